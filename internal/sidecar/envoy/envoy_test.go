package envoy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run real child processes: sh scripts standing in for Envoy
// (this machine has no Envoy), each printing what happens to it.

// start runs e and returns its stdout line by line, Run's result and the process's PID.
func start(t *testing.T, ctx context.Context, cfg Config) (<-chan string, <-chan error, int) {
	t.Helper()
	pr, pw := io.Pipe()
	cfg.Stdout = pw
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 100)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out <- sc.Text()
		}
	}()
	done := make(chan error, 1)
	pids := make(chan int, 1)
	go func() {
		err := e.run(ctx, func(pid int) { pids <- pid })
		pw.Close()
		done <- err
	}()
	return out, done, <-pids
}

func expect(t *testing.T, out <-chan string, want string) {
	t.Helper()
	select {
	case got, ok := <-out:
		if !ok {
			t.Fatalf("the process's output ended, want %q", want)
		}
		if got != want {
			t.Fatalf("the process printed %q, want %q", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the process did not print %q", want)
	}
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// syncBuffer is a log sink safe for the supervisor's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A script that reports signals: "ready" when started, "usr1" on SIGUSR1
// (proof it still runs), "term" on SIGTERM, then exits 0.
const reporter = `trap 'echo usr1' USR1; trap 'echo term; exit 0' TERM; echo ready; while :; do sleep 1 & wait $!; done`

func TestEnvoyExitingByItselfIsAnError(t *testing.T) {
	for _, c := range []struct {
		script     string
		wantStatus int
		wantCode   int
		wantSignal syscall.Signal
	}{
		{"echo ready; exit 3", 3, 3, 0},
		{"echo ready; exit 0", 0, 1, 0},
		{"echo ready; kill -KILL $$", -1, 128 + 9, syscall.SIGKILL},
	} {
		out, done, _ := start(t, context.Background(), Config{Binary: "sh", Args: []string{"-c", c.script}})
		expect(t, out, "ready")
		err := result(t, done)
		var exit *ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("%q: Run returned %v, want an *ExitError", c.script, err)
		}
		if exit.Status != c.wantStatus || exit.ExitCode() != c.wantCode || exit.Signal != c.wantSignal {
			t.Errorf("%q: %+v (exit code %d), want status %d, code %d, signal %v", c.script, exit, exit.ExitCode(), c.wantStatus, c.wantCode, c.wantSignal)
		}
		if !strings.Contains(err.Error(), "envoy exited by itself") {
			t.Errorf("%q: %v does not say Envoy exited by itself", c.script, err)
		}
	}
}

// When the context ends Envoy keeps running for the drain (it answers
// SIGUSR1 after the cancel), then gets SIGTERM, and Run returns nil.
func TestEnvoyDrainsThenGetsSIGTERM(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	out, done, pid := start(t, ctx, Config{Binary: "sh", Args: []string{"-c", reporter}, Drain: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	expect(t, out, "ready")
	cancel()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatalf("envoy is gone right after the cancel, before its drain: %v", err)
	}
	expect(t, out, "usr1")
	expect(t, out, "term")
	if err := result(t, done); err != nil {
		t.Fatalf("Run after a drain and SIGTERM: %v, want nil", err)
	}
	if l := logs.String(); !strings.Contains(l, "draining") || strings.Contains(l, "killed") {
		t.Errorf("supervisor log:\n%s", l)
	}
}

// An Envoy that ignores SIGTERM is killed after the grace; the stop is
// still a clean one.
func TestEnvoyKilledAfterGrace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	out, done, _ := start(t, ctx, Config{Binary: "sh", Args: []string{"-c", `trap 'echo term' TERM; echo ready; while :; do sleep 1 & wait $!; done`},
		Grace: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	expect(t, out, "ready")
	cancel()
	expect(t, out, "term")
	if err := result(t, done); err != nil {
		t.Fatalf("Run after SIGKILL: %v, want nil", err)
	}
	if l := logs.String(); !strings.Contains(l, "killed") || !strings.Contains(l, "signal: killed") {
		t.Errorf("supervisor log does not report the kill:\n%s", l)
	}
}

// Envoy exiting during the drain is its own exit, reported.
func TestEnvoyExitDuringDrainIsAnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out, done, pid := start(t, ctx, Config{Binary: "sh", Args: []string{"-c", `trap 'exit 4' USR1; echo ready; while :; do sleep 1 & wait $!; done`}, Drain: time.Hour})
	expect(t, out, "ready")
	cancel()
	// SIGUSR1 makes it exit 4 during the hour's drain.
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var exit *ExitError
	if err := result(t, done); !errors.As(err, &exit) || exit.Status != 4 {
		t.Fatalf("Run: %v, want Envoy's exit with status 4", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Binary: "atoll-no-such-envoy"}, `envoy binary "atoll-no-such-envoy": exec: "atoll-no-such-envoy": executable file not found in $PATH`},
		{Config{Binary: "/nonexistent/envoy"}, `envoy binary "/nonexistent/envoy"`},
		{Config{}, "envoy binary is empty"},
		{Config{Binary: "sh", Drain: -time.Second}, "envoy drain -1s is negative"},
		{Config{Binary: "sh", Grace: -time.Second}, "envoy grace -1s is negative"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	if _, err := New(Config{Binary: "atoll-no-such-envoy"}); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("a missing binary: %v, want exec.ErrNotFound wrapped", err)
	}
}

func TestArgs(t *testing.T) {
	got := strings.Join(Args("/run/atoll/envoy.json", "debug", 4500*time.Millisecond), " ")
	want := "-c /run/atoll/envoy.json --log-level debug --drain-time-s 5 --drain-strategy immediate --disable-hot-restart"
	if got != want {
		t.Errorf("Args = %q, want %q", got, want)
	}
}
