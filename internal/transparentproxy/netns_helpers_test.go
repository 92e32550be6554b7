package transparentproxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// These helpers build throwaway network namespaces with ip(8) and run code
// inside them; every namespace is deleted when its test ends.

// helperEnv makes the test binary a one-shot TCP client (see TestMain),
// run as the proxy UID to show its traffic bypasses the rules.
const helperEnv = "ATOLL_TPROXY_DIAL"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(dialAndSend(addr, "uid "+fmt.Sprint(os.Getuid())))
	}
	os.Exit(m.Run())
}

func dialAndSend(addr, msg string) int {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// requireNetnsTools fails (never skips) when the test cannot run here.
func requireNetnsTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the transparent-proxy tests create network namespaces and need root")
	}
	tools := []string{"ip"}
	for _, f := range []string{"iptables", "ip6tables"} {
		for _, b := range []Backend{BackendNFT, BackendLegacy} {
			tools = append(tools, f+"-"+string(b), f+"-"+string(b)+"-save", f+"-"+string(b)+"-restore")
		}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make tools (it installs iptables and iproute2)", tool)
		}
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var netnsSeq atomic.Int32

// newNetns adds a namespace with lo up and deletes it when the test ends.
func newNetns(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("atoll-tp-%d-%d-%s", os.Getpid(), netnsSeq.Add(1), role)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("deleting namespace %s: %v\n%s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// inNetns runs fn on a thread moved into the namespace: sockets fn creates
// (and processes it starts) belong to the namespace.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("entering namespace %s: %v", ns, err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and ends with its goroutine.
			t.Errorf("leaving namespace %s: %v", ns, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// arrival is a connection a listener accepted: which listener, the
// destination the client dialled when it was redirected (SO_ORIGINAL_DST;
// zero when the connection reached the listener's own address) and the
// line the client sent.
type arrival struct {
	listener string
	origDst  netip.AddrPort
	msg      string
}

// serve accepts on l until the test ends, reporting each connection.
func serve(t *testing.T, name string, l net.Listener, arrivals chan<- arrival) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// A connection that was not redirected has no original
				// destination other than its own (or, where nothing is
				// tracked, none): report it as zero.
				dst, err := originalDst(c.(*net.TCPConn))
				local := c.LocalAddr().(*net.TCPAddr).AddrPort()
				if err != nil || dst == netip.AddrPortFrom(local.Addr().Unmap(), local.Port()) {
					dst = netip.AddrPort{}
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				arrivals <- arrival{listener: name, origDst: dst, msg: strings.TrimSpace(line)}
			}()
		}
	}()
}

// originalDst reads the destination a redirected connection was made to:
// SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6), as Envoy's
// original_dst listener filter does.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	const soOriginalDst = 80
	var addr netip.AddrPort
	var sysErr error
	v6 := c.LocalAddr().(*net.TCPAddr).IP.To4() == nil
	err = raw.Control(func(fd uintptr) {
		var buf [28]byte // sockaddr_in6, large enough for sockaddr_in
		size := uint32(len(buf))
		level := unix.SOL_IP
		if v6 {
			level = unix.SOL_IPV6
		}
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			sysErr = errno
			return
		}
		port := binary.BigEndian.Uint16(buf[2:4])
		if v6 {
			addr = netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port)
		} else {
			addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port)
		}
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return addr, sysErr
}

// expectArrival waits (bounded) for the next arrival and checks it.
func expectArrival(t *testing.T, arrivals <-chan arrival, listener, msg string, origDst netip.AddrPort) {
	t.Helper()
	select {
	case a := <-arrivals:
		if a.listener != listener || a.msg != msg || a.origDst != origDst {
			t.Fatalf("connection %q arrived at %s (original destination %v), want %s (original destination %v)",
				a.msg, a.listener, a.origDst, listener, origDst)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("connection %q never arrived at %s", msg, listener)
	}
}

// dialFrom connects from inside ns and sends msg.
func dialFrom(t *testing.T, ns, addr, msg string) {
	t.Helper()
	var code int
	inNetns(t, ns, func() { code = dialAndSend(addr, msg) })
	if code != 0 {
		t.Fatalf("dialling %s from %s failed", addr, ns)
	}
}

// dialAsUID connects from inside ns in a child process running as uid, a
// copy of this test binary (see TestMain).
func dialAsUID(t *testing.T, ns, addr string, uid uint32) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "atoll-tp-helper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{helperEnv + "=" + addr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var out []byte
	inNetns(t, ns, func() { out, err = cmd.CombinedOutput() })
	if err != nil {
		t.Fatalf("helper dialling %s as uid %d: %v\n%s", addr, uid, err, out)
	}
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// saveAll is iptables-save and ip6tables-save of the namespace with
// comments and counters dropped, for comparing rule sets.
func saveAll(t *testing.T, ns string, backend Backend, ipv6 bool) string {
	t.Helper()
	families := []string{"iptables"}
	if ipv6 {
		families = append(families, "ip6tables")
	}
	var b strings.Builder
	for _, f := range families {
		out := run(t, "ip", "netns", "exec", ns, f+"-"+string(backend)+"-save")
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "#") || l == "" {
				continue
			}
			b.WriteString(counters.ReplaceAllString(l, "[0:0]") + "\n")
		}
	}
	return b.String()
}

func ipv6Available() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}
