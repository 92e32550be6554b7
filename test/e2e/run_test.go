package e2e

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// make run, the README's front door: test/run.sh starts the global and two
// zones, registers the sample, and kong's identity calls backend in zone-2
// through zone-1's xDS server; Ctrl-C stops everything cleanly.
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
	cmd := exec.Command("bash", "../run.sh")
	cmd.Env = append(os.Environ(), "BIN="+binDir, "RUN_DIR="+t.TempDir(),
		"GLOBAL_API_PORT="+port(), "GLOBAL_KDS_PORT="+port(), "ETCD_CLIENT_PORT="+port(), "ETCD_PEER_PORT="+port(),
		"ZONE1_API_PORT="+port(), "ZONE2_API_PORT="+port(), "ZONE1_DNS_PORT="+port(), "ZONE2_DNS_PORT="+port(),
		"ZONE1_XDS_PORT="+port(), "ZONE2_XDS_PORT="+port(), "BACKEND_PORT="+backendPort)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches the whole group
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut syncBuffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var out syncBuffer
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				close(ready)
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("make run exited before it was ready: %v\n%s\n%s", err, out.String(), errOut.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("make run was not ready within 3 minutes:\n%s\n%s", out.String(), errOut.String())
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^backend\s+3\s+zone-2 \(3\)\s+yes\s+zone-2: direct$`),
		regexp.MustCompile(`(?m)^default\s+kong\.zone-1\s+zone-1\s`),
		regexp.MustCompile(`(?m)^6 of 6 RPCs answered, by backend-1, backend-2, backend-3$`),
	} {
		if !want.MatchString(got) {
			t.Errorf("make run's output lacks %s:\n%s", want, got)
		}
	}

	// Ctrl-C: every process stops, and the script says so.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil || !strings.Contains(out.String(), "stopped. State is kept in") {
			t.Errorf("after Ctrl-C: %v\n%s\n%s", err, out.String(), errOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("make run did not stop within a minute of Ctrl-C:\n%s", out.String())
	}
}
