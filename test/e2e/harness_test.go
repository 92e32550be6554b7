package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds bin/atoll and bin/atollctl built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "atoll-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := []string{"build"}
	if os.Getenv("ATOLL_E2E_RACE") != "" { // make test-race
		build = append(build, "-race")
	}
	for _, name := range []string{"atoll", "atollctl"} {
		cmd := exec.Command("go", append(build, "-o", filepath.Join(dir, name), "../../cmd/"+name)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", name, err)
			os.Exit(1)
		}
	}
	// The sample's gRPC demo, for the make run test.
	cmd := exec.Command("go", append(build, "-o", filepath.Join(dir, "grpcdemo"), "../sample/grpcdemo")...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building grpcdemo: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running bin/atoll.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	apiURL string
	// kdsAddr is the global's bound KDS address.
	kdsAddr string
	dataDir string
	logs    *syncBuffer
	done    chan struct{}
	err     error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// logTail is the WARN and ERROR lines of a JSON log, and its last lines,
// at most n lines in all.
func logTail(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	var keep []string
	for i, l := range lines {
		if i >= len(lines)-n/2 || strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAtoll runs bin/atoll with args plus JSON logs and a free loopback API
// port, and waits until the process logs its bound API address and answers
// /readyz.
func startAtoll(t *testing.T, args ...string) *process {
	t.Helper()
	p := startAtollUnready(t, args...)
	p.waitReady(func() (*http.Client, error) { return http.DefaultClient, nil })
	return p
}

// waitReady polls /readyz with the client client returns until it answers
// 200, failing the test if the process exits or 30 s pass.
func (p *process) waitReady(client func() (*http.Client, error)) {
	t := p.t
	t.Helper()
	waitFor(t, 30*time.Second, "readyz", func() error {
		select {
		case <-p.done:
			t.Fatalf("atoll %v exited after starting: %v\n%s", p.cmd.Args[1:], p.err, p.logs)
		default:
		}
		c, err := client()
		if err != nil {
			return err
		}
		resp, err := c.Get(p.apiURL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
}

// startAtollUnready is startAtoll without waiting for /readyz, for
// processes that are not meant to become ready.
func startAtollUnready(t *testing.T, args ...string) *process {
	t.Helper()
	args = append(args, "--api-addr", "127.0.0.1:0", "--log-format", "json")
	p := &process{t: t, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, "atoll"), args...)
	// A failed test shows the end of each process's log: what it was doing
	// when the test gave up (warnings and errors, then the last lines).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("atoll %s, its log's warnings and errors and last lines:\n%s", strings.Join(args[:min(len(args), 3)], " "), logTail(p.logs.String(), 40))
		}
	})
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var entry struct {
				Msg     string `json:"msg"`
				APIURL  string `json:"apiURL"`
				KDSAddr string `json:"kdsAddr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && strings.HasSuffix(entry.Msg, "control plane started") {
				addr <- [2]string{entry.APIURL, entry.KDSAddr}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("atoll %v: the race detector found a data race:\n%s", args, p.logs)
		}
	})
	select {
	case a := <-addr:
		p.apiURL, p.kdsAddr = a[0], a[1]
	case <-p.done:
		t.Fatalf("atoll %v exited before it was ready: %v\n%s", args, p.err, p.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("atoll %v did not start within 60s:\n%s", args, p.logs)
	}
	return p
}

// startGlobal starts a global; args may override --kds-addr (default a
// free port).
func startGlobal(t *testing.T, dataDir string, args ...string) *process {
	base := []string{"global", "--data-dir", dataDir, "--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0"}
	if !strings.Contains(strings.Join(args, " "), "--kds-addr") {
		base = append(base, "--kds-addr", "127.0.0.1:0")
	}
	p := startAtoll(t, append(base, args...)...)
	p.dataDir = dataDir
	globalsByKDS.Store(p.kdsAddr, p)
	return p
}

// globalsByKDS finds the latest global started on a KDS address, so that
// startSyncedZone can have it issue the zone's token.
var globalsByKDS sync.Map

// zoneToken has g issue a token for zone (through its API, as an operator
// would with atollctl generate zone-token) and returns it.
func zoneToken(t *testing.T, g *process, zone string) string {
	t.Helper()
	return issueToken(t, g.apiURL, zone)
}

// issueToken has the global whose API is at apiURL issue a token for zone.
func issueToken(t *testing.T, apiURL, zone string) string {
	t.Helper()
	status, body := call(t, "POST", apiURL+"/zones/"+zone+"/tokens", `{"validFor":"1h"}`)
	if status != http.StatusCreated {
		t.Fatalf("issuing a token for %s: %d %s", zone, status, body)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Token == "" {
		t.Fatalf("issuing a token for %s: %v %s", zone, err, body)
	}
	return out.Token
}

// tokenFile writes a token for zone, issued by g, to a file and returns
// the zone flags that present it.
func tokenFlags(t *testing.T, g *process, zone string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), zone+".token")
	if err := os.WriteFile(path, []byte(zoneToken(t, g, zone)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--global-token-file", path}
}

// caFile is the CA the global generated for KDS.
func (p *process) caFile() string { return filepath.Join(p.dataDir, "kds-tls", "kds-ca.pem") }

// startSyncedZone starts a zone connected to the global at kdsAddr,
// verifying it with caFile.
// It presents a token the global on kdsAddr issued, unless args name a
// token file.
func startSyncedZone(t *testing.T, zone, dataDir, kdsAddr, caFile string, args ...string) *process {
	base := []string{"--global-address", "grpcs://" + kdsAddr, "--global-ca-file", caFile}
	if g, ok := globalsByKDS.Load(kdsAddr); ok && !strings.Contains(strings.Join(args, " "), "--global-token-file") {
		base = append(base, syncedTokenFlags(t, g.(*process), zone)...)
	}
	return startZone(t, zone, dataDir, append(base, args...)...)
}

// issuedTokens holds the token flags issued per global data dir and zone:
// a global restarted on the same data dir keeps its keys, so a zone started
// again while it is down presents the token it had.
var issuedTokens sync.Map

func syncedTokenFlags(t *testing.T, g *process, zone string) []string {
	key := g.dataDir + "|" + zone
	if flags, ok := issuedTokens.Load(key); ok {
		return flags.([]string)
	}
	select {
	case <-g.done:
		t.Fatalf("zone %s needs a token, but the global on %s is stopped: start the zone once while it runs", zone, g.kdsAddr)
	default:
	}
	flags := tokenFlags(t, g, zone)
	issuedTokens.Store(key, flags)
	return flags
}

// freePort returns a loopback address that was free a moment ago, for a
// process that must come back on the same address after a restart.
// handedOut holds the ports freePort gave, so no two tests get the same.
var handedOut sync.Map

// freePort returns a loopback address whose port is free for TCP and UDP,
// for a server that must keep its address across restarts. Ports come from
// below the kernel's ephemeral range (32768–60999 by default): a port the
// kernel picks for a ":0" listener or an outgoing connection never takes it
// between this check and the server's bind.
func freePort(t *testing.T) string {
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if _, dup := handedOut.LoadOrStore(port, true); dup {
			continue
		}
		if addr := fmt.Sprintf("127.0.0.1:%d", port); bindable(addr) {
			return addr
		}
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

// bindable reports whether addr is free for TCP and UDP right now.
func bindable(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	pc, err := net.ListenPacket("udp", addr)
	ln.Close()
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

func startZone(t *testing.T, zone, dataDir string, args ...string) *process {
	return startAtoll(t, zoneArgs(zone, dataDir, args)...)
}

func zoneArgs(zone, dataDir string, args []string) []string {
	base := []string{"zone", "--zone", zone, "--mode", "universal", "--data-dir", dataDir}
	for _, flag := range []string{"--dns-addr", "--xds-addr"} {
		if !strings.Contains(strings.Join(args, " "), flag) {
			base = append(base, flag, "127.0.0.1:0")
		}
	}
	return append(base, args...)
}

// stop sends SIGTERM (a graceful stop) and waits for the exit; a clean stop
// exits 0.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Errorf("atoll did not exit cleanly on SIGTERM: %v\n%s", p.err, p.logs)
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("atoll did not stop within 30s of SIGTERM:\n%s", p.logs)
	}
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		<-tick.C
	}
}

// call sends a request and returns the status and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

// atollctl runs bin/atollctl and returns stdout, stderr and the exit error.
func atollctl(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "atollctl"), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// runAtoll runs bin/atoll to completion (for commands that exit).
func runAtoll(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "atoll"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
