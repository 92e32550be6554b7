package sidecar

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Probe asks Envoy's admin interface on 127.0.0.1:adminPort whether Envoy
// is ready (GET /ready: 200 once it has its first listeners and clusters
// from the zone). It is the injected native sidecar's startup probe
// (`atoll sidecar probe`): the pod's application starts after it passes.
func Probe(ctx context.Context, adminPort int) error {
	if adminPort < 1 || adminPort > 65535 {
		return fmt.Errorf("--admin-port %d is not a port: use 1-65535 (default %d)", adminPort, DefaultAdminPort)
	}
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(adminPort)) + "/ready"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("Envoy is not answering on its admin port: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("Envoy is not ready yet: GET %s answered %s %q (it waits for its first configuration from the zone: see the sidecar's log)",
			url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
