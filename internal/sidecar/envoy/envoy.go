package envoy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Defaults of the sidecar's Envoy.
const (
	DefaultBinary = "envoy"
	// DefaultGrace is how long Envoy has to exit after SIGTERM before it
	// is killed. Envoy exits at once on SIGTERM; the grace only bounds a
	// hung one, well within Kubernetes' default 30 s termination grace
	// period together with the default 5 s drain.
	DefaultGrace = 10 * time.Second
	// waitDelay bounds the wait for Envoy's output to be copied once it
	// has exited (a descendant holding the pipes open must not hold up
	// the stop).
	waitDelay = time.Second
)

// Config says what to run and how to stop it.
type Config struct {
	// Binary is Envoy's path, or a name looked up in PATH.
	Binary string
	// Args are Envoy's arguments (see Args).
	Args []string
	// Drain is how long Envoy keeps serving once Run's context has ended,
	// before it gets SIGTERM; 0 stops it at once.
	Drain time.Duration
	// Grace is how long Envoy has to exit after SIGTERM before it gets
	// SIGKILL; 0 means DefaultGrace.
	Grace time.Duration
	// Stdout and Stderr receive Envoy's output; nil discards it.
	Stdout, Stderr io.Writer
	// Logger gets the supervisor's own messages; nil discards them.
	Logger *slog.Logger
}

// Args is the sidecar Envoy's command line: the bootstrap at bootstrap, log
// level level, and a drain time matching the sidecar's drain. Hot restart
// is off (one Envoy per container, nothing to hand over to).
func Args(bootstrap, level string, drain time.Duration) []string {
	secs := int(math.Ceil(drain.Seconds()))
	return []string{
		"-c", bootstrap,
		"--log-level", level,
		"--drain-time-s", strconv.Itoa(secs),
		"--drain-strategy", "immediate",
		"--disable-hot-restart",
	}
}

// Envoy is an Envoy to run: New has found its binary.
type Envoy struct {
	cfg  Config
	path string
	log  *slog.Logger
}

// New finds cfg.Binary and checks cfg; nothing runs until Run.
func New(cfg Config) (*Envoy, error) {
	if cfg.Binary == "" {
		return nil, errors.New("envoy binary is empty: give Envoy's path or a name in PATH, e.g. envoy")
	}
	if cfg.Drain < 0 {
		return nil, fmt.Errorf("envoy drain %s is negative: use 0 or a positive duration such as 5s", cfg.Drain)
	}
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("envoy grace %s is negative: use 0 for the default or a positive duration", cfg.Grace)
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	path, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("envoy binary %q: %w: install Envoy in the image or give its path", cfg.Binary, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Envoy{cfg: cfg, path: path, log: log.With("component", "envoy")}, nil
}

// Path is the binary New found.
func (e *Envoy) Path() string { return e.path }

// Run starts Envoy and waits. Envoy exiting by itself is an *ExitError.
// When ctx ends, Envoy is drained, stopped (SIGTERM, then SIGKILL after the
// grace) and Run returns nil.
func (e *Envoy) Run(ctx context.Context) error { return e.run(ctx, nil) }

// run is Run, calling started (when not nil) with Envoy's PID.
func (e *Envoy) run(ctx context.Context, started func(pid int)) error {
	cmd := exec.Command(e.path, e.cfg.Args...)
	cmd.Stdout, cmd.Stderr = e.cfg.Stdout, e.cfg.Stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting envoy %s: %w", e.path, err)
	}
	e.log.Info("envoy started", "pid", cmd.Process.Pid, "binary", e.path, "args", e.cfg.Args)
	if started != nil {
		started(cmd.Process.Pid)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	select {
	case err := <-exited:
		return exitError(cmd, err)
	case <-ctx.Done():
	}

	if e.cfg.Drain > 0 {
		e.log.Info("draining: envoy keeps serving before it is stopped", "drain", e.cfg.Drain)
		drain := time.NewTimer(e.cfg.Drain)
		select {
		case err := <-exited:
			drain.Stop()
			return exitError(cmd, err)
		case <-drain.C:
		}
	}

	e.log.Info("stopping envoy", "signal", "SIGTERM", "grace", e.cfg.Grace)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		e.log.Warn("signalling envoy failed", "error", err)
	}
	grace := time.NewTimer(e.cfg.Grace)
	defer grace.Stop()
	select {
	case err := <-exited:
		e.log.Info("envoy stopped", "status", describe(cmd, err))
		return nil
	case <-grace.C:
	}
	e.log.Warn("envoy did not exit within its grace after SIGTERM: killed", "grace", e.cfg.Grace)
	kill(cmd)
	err := <-exited
	e.log.Info("envoy stopped", "status", describe(cmd, err))
	return nil
}

// ExitError is Envoy exiting by itself, which it never should.
type ExitError struct {
	// Status is Envoy's exit status; -1 when a signal ended it.
	Status int
	// Signal is the signal that ended Envoy, if one did.
	Signal syscall.Signal
}

func (e *ExitError) Error() string {
	if e.Status < 0 {
		return fmt.Sprintf("envoy exited by itself: killed by signal %s (its output above says why)", e.Signal)
	}
	return fmt.Sprintf("envoy exited by itself with status %d (its output above says why)", e.Status)
}

// ExitCode is the exit code for a process whose Envoy exited: Envoy's own
// status, 128+signal for a signal, and 1 for a status of 0 (which is still
// a failure: Envoy must not stop while the pod runs).
func (e *ExitError) ExitCode() int {
	switch {
	case e.Status < 0:
		return 128 + int(e.Signal)
	case e.Status == 0:
		return 1
	}
	return e.Status
}

// exitError is the error for Envoy having exited by itself with err from
// Wait.
func exitError(cmd *exec.Cmd, err error) error {
	st := cmd.ProcessState
	if st == nil {
		return fmt.Errorf("waiting for envoy: %w", err)
	}
	out := &ExitError{Status: st.ExitCode()}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		out.Status, out.Signal = -1, ws.Signal()
	}
	return out
}

// describe is how Envoy ended, for the log.
func describe(cmd *exec.Cmd, err error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	return err.Error()
}
