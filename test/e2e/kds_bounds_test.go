package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

// pushAck sends p and returns the reasons of its ACK by refused key.
func (z *rawZone) pushAck(p *v1alpha1.Push) map[string]string {
	z.t.Helper()
	z.send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: p}})
	for {
		m, err := z.stream.Recv()
		if err != nil {
			z.t.Fatalf("stream ended: %v", err)
		}
		if ack := m.GetAck(); ack != nil && ack.GetNonce() == p.GetNonce() {
			out := map[string]string{}
			for _, e := range ack.GetErrors() {
				out[e.GetKey()] = e.GetMessage()
			}
			return out
		}
	}
}

func wireOf(t *testing.T, rs ...*resource.Resource) []*v1alpha1.WireResource {
	t.Helper()
	var out []*v1alpha1.WireResource
	for _, r := range rs {
		w, err := kds.ToWire(r, r.Meta.Name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, w)
	}
	return out
}

func TestUnknownTypeNamesAreRefused(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	z := dialRaw(t, g, "zone-7")

	// A push of a type the registry does not know is NACKed resource by
	// resource, with the type name shortened, and the session goes on.
	huge := strings.Repeat("Evil", 64<<10)
	refused := z.pushAck(&v1alpha1.Push{Type: huge, Nonce: "1", Resources: wireOf(t,
		storetest.Dataplane("default", "dp-1", 8080), storetest.Dataplane("default", "dp-2", 8080))})
	if len(refused) != 2 {
		t.Fatalf("refused %v, want both dataplanes", refused)
	}
	for key, why := range refused {
		if !strings.Contains(why, "not accepted") || len(why) > 200 {
			t.Errorf("%s refused with %.120q (%d bytes): want a short reason", key, why, len(why))
		}
	}
	if got := z.pushAck(&v1alpha1.Push{Type: string(resource.DataplaneType), Nonce: "2", Resources: wireOf(t,
		storetest.Dataplane("default", "dp-3", 8080))}); len(got) != 0 {
		t.Fatalf("a valid push after the unknown type was refused: %v", got)
	}
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "dp-3.zone-7")

	// An ACK of a type the global never sent ends the session with a
	// clear error.
	z.send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Ack{Ack: &v1alpha1.Ack{Type: huge, Nonce: "1"}}})
	for {
		_, err := z.stream.Recv()
		if err == nil {
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "acknowledged") || !strings.Contains(msg, "does not send") || len(msg) > 300 {
			t.Errorf("the session ended with %.300q (%d bytes): want a short error saying the type is not sent", msg, len(msg))
		}
		break
	}
	// The global is fine, and a new session of the zone works.
	z2 := dialRaw(t, g, "zone-7")
	if got := z2.pushAck(&v1alpha1.Push{Type: string(resource.DataplaneType), Nonce: "1", Resources: wireOf(t,
		storetest.Dataplane("default", "dp-4", 8080))}); len(got) != 0 {
		t.Fatalf("refused %v", got)
	}
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "dp-3.zone-7,dp-4.zone-7")
}

// padded is a Dataplane padded with labels to about size bytes.
func paddedDataplane(name string, size int) *resource.Resource {
	r := storetest.Dataplane("default", name, 8080)
	r.Meta.Labels = map[string]string{}
	for i := 0; i*260 < size; i++ {
		r.Meta.Labels[fmt.Sprintf("pad-%05d", i)] = strings.Repeat("x", 250)
	}
	return r
}

func TestAnOversizedResourceIsNackedWhileOthersSync(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	z := dialRaw(t, g, "zone-5")
	// 1.5 MiB: under the 4 MiB message limit, over what one etcd request
	// may carry.
	refused := z.pushAck(&v1alpha1.Push{Type: string(resource.DataplaneType), Nonce: "1", Resources: wireOf(t,
		storetest.Dataplane("default", "small-1", 8080), paddedDataplane("huge", 3<<19), storetest.Dataplane("default", "small-2", 8080))})
	why, ok := refused["default/huge"]
	if len(refused) != 1 || !ok {
		t.Fatalf("refused %v, want only default/huge", refused)
	}
	for _, want := range []string{`"default/huge"`, "1048576", "not stored", "make it smaller"} {
		if !strings.Contains(why, want) {
			t.Errorf("reason %q does not say %q", why, want)
		}
	}
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "small-1.zone-5,small-2.zone-5")

	// The session goes on.
	if got := z.pushAck(&v1alpha1.Push{Type: string(resource.DataplaneType), Nonce: "2", Resources: wireOf(t,
		storetest.Dataplane("default", "small-3", 8080))}); len(got) != 0 {
		t.Fatalf("refused %v", got)
	}
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "small-1.zone-5,small-2.zone-5,small-3.zone-5")
	_, metrics := call(t, "GET", g.apiURL+"/metrics", "")
	if !strings.Contains(metrics, `atoll_kds_refused_resources_total{reason="too-large",zone="zone-5"} 1`) {
		t.Errorf("the oversized resource is not counted:\n%s", grepLines(metrics, "atoll_kds_refused"))
	}
}

func TestTheResourceCapNacksExtras(t *testing.T) {
	g := startGlobal(t, t.TempDir(), "--max-resources-per-zone", "3")
	z := dialRaw(t, g, "zone-6")
	var dps []*resource.Resource
	for i := range 5 {
		dps = append(dps, storetest.Dataplane("default", fmt.Sprintf("dp-%d", i), 8080))
	}
	refused := z.pushAck(&v1alpha1.Push{Type: string(resource.DataplaneType), Nonce: "1", Resources: wireOf(t, dps...)})
	if len(refused) != 2 {
		t.Fatalf("refused %v, want 2 of 5 over the cap of 3", refused)
	}
	for key, why := range refused {
		if !strings.Contains(why, "--max-resources-per-zone") || !strings.Contains(why, "3 resources") {
			t.Errorf("%s refused with %q: want the cap and the flag named", key, why)
		}
	}
	status, body := call(t, "GET", g.apiURL+"/meshes/default/dataplanes", "")
	if n := len(listNames(t, body)); status != 200 || n != 3 {
		t.Errorf("the global keeps %d of zone-6's dataplanes (%d), want 3", n, status)
	}
	// A removal makes room again.
	var kept string
	for _, dp := range dps {
		if _, no := refused["default/"+dp.Meta.Name]; !no {
			kept = "default/" + dp.Meta.Name
			break
		}
	}
	if got := z.pushAck(&v1alpha1.Push{Type: string(resource.DataplaneType), Nonce: "2", Removed: []string{kept},
		Resources: wireOf(t, storetest.Dataplane("default", "dp-new", 8080))}); len(got) != 0 {
		t.Errorf("a push removing one and adding one at the cap was refused: %v", got)
	}
}

// dialCompressed is dialRaw with gzip on the stream, as real zones send.
func dialCompressed(t *testing.T, g *process, zone string) *rawZone {
	return dialRawToken(t, g, zone, zoneToken(t, g, zone), grpc.UseCompressor(gzip.Name), grpc.MaxCallSendMsgSize(8<<20), grpc.MaxCallRecvMsgSize(8<<20))
}

// memory returns a field of /proc/PID/status of p, in bytes.
func memory(t *testing.T, p *process, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
	return 0
}

func TestACompressibleFloodKeepsTheGlobalsMemoryBounded(t *testing.T) {
	// 200 pushes of about 3.4 MiB each, almost all zeros: a few KiB each
	// compressed, 680 MiB once decompressed. Each names 2,000 resources of
	// a type the global does not accept, so each ACK is large, and the
	// client reads none until it has sent everything it can. The global
	// must stop reading (flow control holds the client back) rather than
	// queue what it cannot answer: its peak resident memory stays within
	// 200 MiB of where it started.
	const pushes = 200
	bound := int64(200 << 20)
	if os.Getenv("ATOLL_E2E_RACE") != "" {
		// The race detector's shadow memory multiplies what every buffer
		// costs (5–10× by its documentation); the unbounded queue grew by
		// ~1 GiB without it.
		bound *= 4
	}
	g := startGlobal(t, t.TempDir())
	z := dialCompressed(t, g, "zone-8")
	// The session is up once a push is answered.
	if got := z.pushAck(&v1alpha1.Push{Type: string(resource.DataplaneType), Nonce: "warm-up", Resources: wireOf(t,
		storetest.Dataplane("default", "dp-1", 8080))}); len(got) != 0 {
		t.Fatalf("refused %v", got)
	}
	before := memory(t, g, "VmRSS")

	names := make([]*v1alpha1.WireResource, 2000)
	for i := range names {
		b := make([]byte, 100)
		rand.Read(b)
		names[i] = &v1alpha1.WireResource{Mesh: "default", Name: fmt.Sprintf("%x", b)}
	}
	junk := &v1alpha1.WireResource{Mesh: "default", Name: "junk", Spec: make([]byte, 3<<20)}
	var sent atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i := range pushes {
			p := &v1alpha1.Push{Type: "Junk", Nonce: strconv.Itoa(i), Resources: append([]*v1alpha1.WireResource{junk}, names...)}
			if err := z.stream.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: p}}); err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
		done <- nil
	}()

	// Wait until the client has sent everything or is held back: no
	// progress for three seconds.
	settle := time.NewTicker(3 * time.Second)
	last := int64(-1)
settling:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("sending: %v", err)
			}
			done <- nil
			break settling
		case <-settle.C:
			n := sent.Load()
			if n == last {
				break settling
			}
			last = n
		}
	}
	settle.Stop()
	t.Logf("the client sent %d of %d pushes before being held back", sent.Load(), pushes)

	// Now read every ACK; the global answers every push.
	acked := 0
	for acked < pushes {
		m, err := z.stream.Recv()
		if err != nil {
			t.Fatalf("after %d ACKs: %v", acked, err)
		}
		if ack := m.GetAck(); ack != nil && ack.GetType() == "Junk" {
			if len(ack.GetErrors()) != len(names)+1 {
				t.Fatalf("ACK %s refused %d resources, want %d", ack.GetNonce(), len(ack.GetErrors()), len(names)+1)
			}
			acked++
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("sending: %v", err)
	}
	peak := memory(t, g, "VmHWM")
	t.Logf("global memory: %d MiB resident before, %d MiB at peak", before>>20, peak>>20)
	if peak-before > bound {
		t.Errorf("the global's peak resident memory grew by %d MiB, over %d MiB: it queued what the peer sent", (peak-before)>>20, bound>>20)
	}
	// The session survived it.
	if got := z.pushAck(&v1alpha1.Push{Type: string(resource.DataplaneType), Nonce: "after", Resources: wireOf(t,
		storetest.Dataplane("default", "dp-2", 8080))}); len(got) != 0 {
		t.Fatalf("refused %v", got)
	}
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "dp-1.zone-8,dp-2.zone-8")
}
