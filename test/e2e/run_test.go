package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// makeRun is one run of test/run.sh, as `make run` starts it.
type makeRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    syncBuffer
	errOut syncBuffer
	ready  chan struct{}
	exited chan error
}

// startMakeRun runs test/run.sh with env and waits until it prints that
// everything runs.
func startMakeRun(t *testing.T, env []string) *makeRun {
	t.Helper()
	r := &makeRun{t: t, ready: make(chan struct{}), exited: make(chan error, 1)}
	r.cmd = exec.Command("bash", "../run.sh")
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches the whole group
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = &r.errOut
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.out.Write([]byte(sc.Text() + "\n"))
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				close(r.ready)
			}
		}
		r.exited <- r.cmd.Wait()
	}()
	t.Cleanup(func() { syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) })
	select {
	case <-r.ready:
	case err := <-r.exited:
		t.Fatalf("make run exited before it was ready: %v\n%s\n%s", err, r.out.String(), r.errOut.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("make run was not ready within 3 minutes:\n%s\n%s", r.out.String(), r.errOut.String())
	}
	return r
}

// interrupt is Ctrl-C: every process stops, and the script says so.
func (r *makeRun) interrupt() {
	r.t.Helper()
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-r.exited:
		if err != nil || !strings.Contains(r.out.String(), "stopped. State is kept in") {
			r.t.Errorf("after Ctrl-C: %v\n%s\n%s", err, r.out.String(), r.errOut.String())
		}
	case <-time.After(time.Minute):
		r.t.Fatalf("make run did not stop within a minute of Ctrl-C:\n%s", r.out.String())
	}
}

// tryCommand is the command of the "Try" list line whose comment is
// comment, as a user would copy it.
func (r *makeRun) tryCommand(comment string) string {
	r.t.Helper()
	for line := range strings.Lines(r.out.String()) {
		if cmd, ok := strings.CutSuffix(strings.TrimSpace(line), "# "+comment); ok {
			return strings.TrimSpace(cmd)
		}
	}
	r.t.Fatalf("make run's Try list has no command for %q:\n%s", comment, r.out.String())
	return ""
}

// shell runs a command line the script printed, from the repository root
// (where make run runs), and returns its output.
func shell(t *testing.T, line string) string {
	t.Helper()
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return string(out)
}

// make run, the README's front door: test/run.sh starts the global and two
// zones, registers the sample, and kong's identity calls backend in zone-2
// through zone-1's xDS server; Ctrl-C stops everything cleanly. Run again
// after its own "disable zone-2" step, it says that zone-2 is disabled and
// how to enable it, kong's calls fail at once with one line saying why,
// and the command it prints brings zone-2's services back.
func TestMakeRun(t *testing.T) {
	port := func() string {
		_, p, _ := net.SplitHostPort(freePort(t))
		return p
	}
	// The backends' port, free on the three loopback addresses they use
	// (a make run elsewhere on the machine keeps 9001).
	backendPort := ""
	for attempt := 0; attempt < 20 && backendPort == ""; attempt++ {
		p := port()
		free := true
		for _, host := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
			ln, err := net.Listen("tcp", host+":"+p)
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			backendPort = p
		}
	}
	if backendPort == "" {
		t.Fatal("no port free on 127.0.0.2-4 for the sample's backends")
	}
	zone1API, zone1DNS := port(), port()
	env := []string{"BIN=" + binDir, "RUN_DIR=" + t.TempDir(),
		"GLOBAL_API_PORT=" + port(), "GLOBAL_KDS_PORT=" + port(), "ETCD_CLIENT_PORT=" + port(), "ETCD_PEER_PORT=" + port(),
		"ZONE1_API_PORT=" + zone1API, "ZONE2_API_PORT=" + port(), "ZONE1_DNS_PORT=" + zone1DNS, "ZONE2_DNS_PORT=" + port(),
		"ZONE1_XDS_PORT=" + port(), "ZONE2_XDS_PORT=" + port(), "BACKEND_PORT=" + backendPort}

	first := startMakeRun(t, env)
	got := first.out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^backend\s+3\s+zone-2 \(3\)\s+yes\s+zone-2: direct$`),
		regexp.MustCompile(`(?m)^default\s+kong\.zone-1\s+zone-1\s`),
		regexp.MustCompile(`(?m)^6 of 6 RPCs answered, by backend-1, backend-2, backend-3$`),
	} {
		if !want.MatchString(got) {
			t.Errorf("make run's output lacks %s:\n%s", want, got)
		}
	}
	// Without dig: the printed lookup answers backend's VIP from zone-1's DNS.
	vip := regexp.MustCompile(`"service":"backend","vip":"([0-9.]+)"`).FindStringSubmatch(got)
	if vip == nil {
		t.Fatalf("make run printed no VIP for backend:\n%s", got)
	}
	if out := shell(t, first.tryCommand("the same question without dig")); out != "backend.mesh: "+vip[1]+"\n" {
		t.Errorf("the lookup without dig printed %q, want backend.mesh: %s", out, vip[1])
	}
	// Each disruptive step is followed by the one that undoes it.
	for _, undo := range []string{"undo: backend-3 is back", "undo: zone-2 enabled again", "undo: a new token, zone-2 is back"} {
		first.tryCommand(undo)
	}
	shell(t, first.tryCommand("disable zone-2"))
	first.interrupt()

	second := startMakeRun(t, env)
	got = second.out.String()
	enable := regexp.MustCompile(`(?m)^zone-2 is disabled at the global \(kept in \S+ from an earlier run\), so zone-1 does not see its services\. Enable it with:\n  (printf 'type: Zone\\nname: zone-2\\nenabled: true\\n' \| \S+/atollctl --api-url http://127\.0\.0\.1:\d+ apply -f -)$`).FindStringSubmatch(got)
	if enable == nil {
		t.Fatalf("the second make run does not say that zone-2 is disabled and how to enable it:\n%s", got)
	}
	noEndpoints := regexp.MustCompile(`(?m)^xds:///backend\.mesh:\d+: no endpoints for backend\.mesh in zone-1\b.*$`)
	if n := len(noEndpoints.FindAllString(got, -1)); n != 1 || !strings.Contains(got, "\n0 of 6 RPCs answered\n") {
		t.Errorf("kong's calls with zone-2 disabled: %d lines saying %s, want one, then 0 of 6 RPCs answered:\n%s", n, noEndpoints, got)
	}
	if strings.Contains(got, "context deadline exceeded") {
		t.Errorf("kong's calls report timeouts, not why they fail:\n%s", got)
	}

	// The printed command enables zone-2: zone-1 sees backend again.
	shell(t, enable[1])
	waitFor(t, syncWait, "zone-1 seeing backend in zone-2 again", func() error {
		out, errOut, err := atollctl(t, "", "--api-url", "http://127.0.0.1:"+zone1API, "get", "services")
		if err != nil || !regexp.MustCompile(`(?m)^backend\s+3\s+zone-2 \(3\)\s+yes\s+zone-2: direct$`).MatchString(out) {
			return fmt.Errorf("%v: %s%s", err, out, errOut)
		}
		return nil
	})
	second.interrupt()
}
