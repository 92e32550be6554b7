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

// process is a started kube-apiserver.
type process struct {
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // set before exited is closed
}

// startProcess starts bin with args, its output appended to logPath.
func startProcess(bin string, args []string, logPath string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("apiserver log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &process{cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop asks the apiserver to shut down, kills it when it has not within
// timeout, and returns once it has exited.
func (p *process) stop(timeout time.Duration) error {
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
func waitReady(ctx context.Context, cfg *rest.Config, p *process) error {
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
