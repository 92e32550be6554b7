package kubeenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// Process is a server a test started (the kube-apiserver here, CoreDNS in
// test/clusterdns): killed by the kernel if the test binary dies, stopped
// with Stop.
type Process struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // set before exited is closed
}

// StartProcess starts bin with args, its output appended to logPath.
func StartProcess(bin string, args []string, logPath string) (*Process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", bin, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed once the process has exited; Err says how then.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited, once Exited is closed.
func (p *Process) Err() error { return p.waitErr }

// Stop asks the process to shut down (SIGTERM), kills it when it has not
// within timeout, and returns once it has exited.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return fmt.Errorf("it had already exited: %v", p.waitErr)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		return nil
	case <-timer.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("still running %s after SIGTERM, and SIGKILL failed: %w", timeout, err)
	}
	<-p.exited
	return fmt.Errorf("still running %s after SIGTERM; killed", timeout)
}

// waitReady polls the apiserver's /readyz as the admin until it answers ok,
// the process exits, or ctx ends.
func waitReady(ctx context.Context, cfg *rest.Config, p *Process) error {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = requestTimeout
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("http client: %w", err)
	}
	defer client.CloseIdleConnections()
	url := cfg.Host + "/readyz?verbose"
	start := time.Now()
	ticker := time.NewTicker(readyPollInterval)
	defer ticker.Stop()
	last := "no answer yet"
	for {
		if answer, ok := readyz(ctx, client, url); ok {
			return nil
		} else if answer != "" {
			last = answer
		}
		select {
		case <-ticker.C:
		case <-p.exited:
			return fmt.Errorf("exited before it was ready: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s; last /readyz answer: %s", time.Since(start).Round(time.Second), last)
		}
	}
}

// readyz asks once; it returns whether the apiserver is ready and, when not,
// what it said (only the failing checks of a verbose answer).
func readyz(ctx context.Context, client *http.Client, url string) (string, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error(), false
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", false
		}
		return err.Error(), false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return "", true
	}
	var failed []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.Contains(line, "failed") {
			failed = append(failed, strings.TrimSpace(line))
		}
	}
	if len(failed) == 0 {
		return fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body)), false
	}
	return fmt.Sprintf("%s: %s", resp.Status, strings.Join(failed, "; ")), false
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
