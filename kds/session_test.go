package kds_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

func TestInitialSyncBothWays(t *testing.T) {
	zone, global := newEndpoint(), newEndpoint()
	zone.want(resource.DataplaneType, dataplane(t, "dp-1", 8080), dataplane(t, "dp-2", 8081))
	zone.want(resource.ZoneIngressType, zoneIngress(t, "zone-1"))
	global.want(resource.MeshType, mesh(t, "default"), mesh(t, "payments"))
	global.want(resource.ZoneIngressType, zoneIngress(t, "zone-2"), zoneIngress(t, "zone-3"))
	connect(t, zone, global, zoneConfig(), globalConfig())

	cases := []struct {
		name     string
		from, to *fakeEndpoint
		typ      resource.Type
	}{
		{"the zone's dataplanes reach the global", zone, global, resource.DataplaneType},
		{"the zone's ingress reaches the global", zone, global, resource.ZoneIngressType},
		{"meshes reach the zone", global, zone, resource.MeshType},
		{"other zones' ingresses reach the zone", global, zone, resource.ZoneIngressType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eventually(t, func() error { return sameResources(c.to.holding(c.typ), c.from.wanted(c.typ)) })
		})
	}
}

func TestWhatThePeerHoldsIsNotResent(t *testing.T) {
	dp := storetest.Dataplane("default", "dp-1", 8080)
	stored := dp.Clone()
	stored.Meta.Labels = map[string]string{resource.ZoneLabel: "zone-1", resource.OriginLabel: "zone"}
	relabelled := dp.Clone()
	relabelled.Meta.Labels = map[string]string{"team": "payments"}

	cases := []struct {
		name     string
		held     *v1alpha1.WireResource
		wantSent uint64
	}{
		{"the same content", toWire(t, dp), 0},
		{"the same content stored with system labels", toWire(t, stored), 0},
		{"an older spec", dataplane(t, "dp-1", 9090), 1},
		{"different labels", toWire(t, relabelled), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			zoneEp, globalEp := newEndpoint(), newEndpoint()
			zoneEp.want(resource.DataplaneType, toWire(t, dp))
			globalEp.want(resource.MeshType, mesh(t, "default"))
			globalEp.hold(resource.DataplaneType, c.held)
			zone, _ := connect(t, zoneEp, globalEp, zoneConfig(), globalConfig())

			// The global subscribes before it pushes anything and the zone
			// answers a subscription before reading the next message, so
			// once the zone holds the global's mesh it has answered.
			eventually(t, func() error {
				return sameResources(zoneEp.holding(resource.MeshType), globalEp.wanted(resource.MeshType))
			})
			if got := zone.stats(resource.DataplaneType).Sent; got != c.wantSent {
				t.Errorf("the zone sent %d dataplanes, want %d", got, c.wantSent)
			}
			eventually(t, func() error {
				return sameResources(globalEp.holding(resource.DataplaneType), zoneEp.wanted(resource.DataplaneType))
			})
		})
	}
}

func TestReconciliationRemovesWhatTheSenderNoLongerHas(t *testing.T) {
	cases := []struct {
		name      string
		fromZone  bool
		typ       resource.Type
		desired   []*v1alpha1.WireResource
		held      []*v1alpha1.WireResource
		wantSent  uint64
		wantGones []string
	}{
		{
			name: "the global drops a dataplane the zone deleted while apart", fromZone: true, typ: resource.DataplaneType,
			desired:  []*v1alpha1.WireResource{dataplane(t, "dp-1", 8080)},
			held:     []*v1alpha1.WireResource{dataplane(t, "dp-1", 8080), dataplane(t, "dp-gone", 8080)},
			wantSent: 1, wantGones: []string{"default/dp-gone"},
		},
		{
			name: "the global drops everything of a zone that has nothing", fromZone: true, typ: resource.DataplaneType,
			held:     []*v1alpha1.WireResource{dataplane(t, "dp-1", 8080), dataplane(t, "dp-2", 8080)},
			wantSent: 2, wantGones: []string{"default/dp-1", "default/dp-2"},
		},
		{
			name: "the zone drops a mesh the global deleted while apart", typ: resource.MeshType,
			desired:  []*v1alpha1.WireResource{mesh(t, "default")},
			held:     []*v1alpha1.WireResource{mesh(t, "default"), mesh(t, "retired")},
			wantSent: 1, wantGones: []string{"/retired"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			zoneEp, globalEp := newEndpoint(), newEndpoint()
			from, to := globalEp, zoneEp
			if c.fromZone {
				from, to = zoneEp, globalEp
			}
			from.want(c.typ, c.desired...)
			to.hold(c.typ, c.held...)
			zone, global := connect(t, zoneEp, globalEp, zoneConfig(), globalConfig())
			sender := global
			if c.fromZone {
				sender = zone
			}

			eventually(t, func() error { return sameResources(to.holding(c.typ), from.wanted(c.typ)) })
			if got := sender.stats(c.typ).Sent; got != c.wantSent {
				t.Errorf("sent %d changes, want %d (only the removals %v)", got, c.wantSent, c.wantGones)
			}
		})
	}
}

func TestChangedPushesOnlyTheDifference(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, ep *fakeEndpoint)
		// calls is how many times Changed is called.
		calls int
		want  uint64
	}{
		{"one spec changed", func(t *testing.T, ep *fakeEndpoint) {
			ep.want(resource.DataplaneType, dataplane(t, "dp-2", 9090))
		}, 1, 1},
		{"one removed", func(t *testing.T, ep *fakeEndpoint) {
			ep.unwant(resource.DataplaneType, "default/dp-3")
		}, 1, 1},
		{"one added, notified many times", func(t *testing.T, ep *fakeEndpoint) {
			ep.want(resource.DataplaneType, dataplane(t, "dp-6", 8080))
		}, 10, 1},
		{"one changed, one removed, one added", func(t *testing.T, ep *fakeEndpoint) {
			ep.want(resource.DataplaneType, dataplane(t, "dp-2", 9090), dataplane(t, "dp-6", 8080))
			ep.unwant(resource.DataplaneType, "default/dp-3")
		}, 1, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			zoneEp, globalEp := newEndpoint(), newEndpoint()
			for i := 1; i <= 5; i++ {
				zoneEp.want(resource.DataplaneType, dataplane(t, fmt.Sprintf("dp-%d", i), 8080))
			}
			zone, _ := connect(t, zoneEp, globalEp, zoneConfig(), globalConfig())
			const initial = 5
			eventually(t, func() error {
				if st := zone.stats(resource.DataplaneType); st.Acked != initial {
					return fmt.Errorf("initial sync: %d of %d acknowledged", st.Acked, initial)
				}
				return nil
			})

			c.change(t, zoneEp)
			for range c.calls {
				zone.Changed(resource.DataplaneType)
			}
			eventually(t, func() error {
				if err := sameResources(globalEp.holding(resource.DataplaneType), zoneEp.wanted(resource.DataplaneType)); err != nil {
					return err
				}
				if st := zone.stats(resource.DataplaneType); st.Acked < initial+c.want {
					return fmt.Errorf("%d of %d acknowledged", st.Acked, initial+c.want)
				}
				return nil
			})
			if got := zone.stats(resource.DataplaneType).Sent; got != initial+c.want {
				t.Errorf("sent %d after the change, want %d", got-initial, c.want)
			}
		})
	}
}

func TestARefusedResourceIsNackedAlone(t *testing.T) {
	zoneEp, globalEp := newEndpoint(), newEndpoint()
	zoneEp.want(resource.DataplaneType, dataplane(t, "dp-1", 8080), dataplane(t, "dp-bad", 8080), dataplane(t, "dp-2", 8080))
	globalEp.refuse["default/dp-bad"] = "networking.address: must be routable"
	zone, global := connect(t, zoneEp, globalEp, zoneConfig(), globalConfig())

	settled := func(acked uint64) func() error {
		return func() error {
			if st := zone.stats(resource.DataplaneType); st.Acked != acked || st.Nacked != 1 {
				return fmt.Errorf("acked %d, nacked %d; want %d and 1", st.Acked, st.Nacked, acked)
			}
			return nil
		}
	}
	eventually(t, settled(2))
	want := zoneEp.wanted(resource.DataplaneType)
	delete(want, "default/dp-bad")
	if err := sameResources(globalEp.holding(resource.DataplaneType), want); err != nil {
		t.Errorf("the global holds the wrong dataplanes: %v", err)
	}
	if got := global.stats(resource.DataplaneType).Refused; got != 1 {
		t.Errorf("the global counts %d refused, want 1", got)
	}

	// A later, unrelated change still flows, and the refused resource is
	// not sent again with it.
	zoneEp.want(resource.DataplaneType, dataplane(t, "dp-3", 8080))
	zone.Changed(resource.DataplaneType)
	eventually(t, settled(3))
	want["default/dp-3"] = dataplane(t, "dp-3", 8080)
	if err := sameResources(globalEp.holding(resource.DataplaneType), want); err != nil {
		t.Errorf("after the later change, the global holds the wrong dataplanes: %v", err)
	}
	if got := zone.stats(resource.DataplaneType).Sent; got != 4 {
		t.Errorf("the zone sent %d dataplanes, want 4: three, then only dp-3", got)
	}
	zone.stillRunning(t)
	global.stillRunning(t)
}

func TestEveryMessageStaysUnderTheCap(t *testing.T) {
	const (
		n        = 20000
		capBytes = 256 << 10
	)
	zoneEp, globalEp := newEndpoint(), newEndpoint()
	dps := make([]*v1alpha1.WireResource, n)
	for i := range dps {
		dps[i] = dataplane(t, fmt.Sprintf("dp-%05d", i), 8080)
	}
	zoneEp.want(resource.DataplaneType, dps...)
	zs, gs := pipe(64)
	t.Cleanup(zs.Close)
	rec := &recordingStream{Stream: zs}
	zoneCfg := zoneConfig()
	zoneCfg.MaxMessageSize = capBytes
	zone := start(t, rec, zoneEp, zoneCfg)
	global := start(t, gs, globalEp, globalConfig())

	eventually(t, func() error {
		if got := len(globalEp.holding(resource.DataplaneType)); got != n {
			return fmt.Errorf("the global holds %d of %d dataplanes", got, n)
		}
		return nil
	})
	if err := sameResources(globalEp.holding(resource.DataplaneType), zoneEp.wanted(resource.DataplaneType)); err != nil {
		t.Error(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.pushes < 2 {
		t.Errorf("%d pushes: the test needs the dataplanes to span several", rec.pushes)
	}
	for i, size := range rec.sizes {
		if size > capBytes {
			t.Errorf("message %d is %d bytes, over the %d cap", i, size, capBytes)
		}
	}
	// Both ends count the same bytes, and the largest push and resource
	// the session reports are what was sent.
	largest := 0
	for _, dp := range dps {
		largest = max(largest, proto.Size(dp))
	}
	sent := zone.Stats.Snapshot().Types[resource.DataplaneType]
	got := global.Stats.Snapshot().Types[resource.DataplaneType]
	if sent.SentBytes == 0 || sent.SentBytes != got.ReceivedBytes {
		t.Errorf("the zone counts %d bytes sent, the global %d received", sent.SentBytes, got.ReceivedBytes)
	}
	if sent.LargestPushBytes == 0 || sent.LargestPushBytes > capBytes || sent.LargestPushBytes != got.LargestPushBytes {
		t.Errorf("largest push: the zone counts %d bytes, the global %d; want the same, within %d", sent.LargestPushBytes, got.LargestPushBytes, capBytes)
	}
	if sent.LargestResourceBytes != uint64(largest) || got.LargestResourceBytes != uint64(largest) {
		t.Errorf("largest resource: the zone counts %d bytes, the global %d, want %d", sent.LargestResourceBytes, got.LargestResourceBytes, largest)
	}
}

func TestBothDirectionsAtOnceDoNotDeadlock(t *testing.T) {
	// Each end pushes 3,000 resources in pushes of about 2 KiB (the cap
	// less the session's 64 KiB envelope) over a stream that buffers one
	// message each way: both ends are often blocked in Send, and sync
	// completes only if each keeps reading meanwhile.
	const n = 3000
	zoneEp, globalEp := newEndpoint(), newEndpoint()
	for i := range n {
		zoneEp.want(resource.DataplaneType, dataplane(t, fmt.Sprintf("dp-%05d", i), 8080))
		globalEp.want(resource.ZoneIngressType, zoneIngress(t, fmt.Sprintf("zone-%05d", i)))
	}
	z, g := pipe(1)
	t.Cleanup(z.Close)
	zoneCfg, globalCfg := zoneConfig(), globalConfig()
	zoneCfg.MaxMessageSize, globalCfg.MaxMessageSize = 66<<10, 66<<10
	start(t, z, zoneEp, zoneCfg)
	start(t, g, globalEp, globalCfg)

	eventually(t, func() error {
		if err := sameResources(globalEp.holding(resource.DataplaneType), zoneEp.wanted(resource.DataplaneType)); err != nil {
			return fmt.Errorf("the global's dataplanes: %w", err)
		}
		return sameResources(zoneEp.holding(resource.ZoneIngressType), globalEp.wanted(resource.ZoneIngressType))
	})
}

// peerOf runs a zone session against the test, which plays the global: it
// returns the test's end after reading the zone's subscriptions.
func peerOf(t *testing.T, ep *fakeEndpoint, cfg kds.SessionConfig) (*running, *pipeEnd) {
	t.Helper()
	z, g := pipe(64)
	t.Cleanup(z.Close)
	zone := start(t, z, ep, cfg)
	for _, typ := range cfg.Receive {
		if got := g.next(t).GetSubscribe().GetType(); got != string(typ) {
			t.Fatalf("the zone subscribed to %q, want %q", got, typ)
		}
	}
	return zone, g
}

func TestAPushOfATypeNotReceivedIsNacked(t *testing.T) {
	cases := []resource.Type{resource.DataplaneType, resource.ZoneType, "NoSuchType"}
	for _, typ := range cases {
		t.Run(string(typ), func(t *testing.T) {
			ep := newEndpoint()
			zone, global := peerOf(t, ep, zoneConfig())
			push := &v1alpha1.Push{Type: string(typ), Nonce: "7", Resources: []*v1alpha1.WireResource{
				dataplane(t, "dp-1", 8080), dataplane(t, "dp-2", 8080), dataplane(t, "dp-3", 8080),
			}}
			if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: push}}); err != nil {
				t.Fatal(err)
			}
			ack := global.next(t).GetAck()
			if ack.GetType() != string(typ) || ack.GetNonce() != "7" {
				t.Fatalf("got %v, want an ack of %s nonce 7", ack, typ)
			}
			var keys []string
			for _, e := range ack.GetErrors() {
				keys = append(keys, e.GetKey())
			}
			if got, want := strings.Join(keys, " "), "default/dp-1 default/dp-2 default/dp-3"; got != want {
				t.Errorf("NACKed %q, want %q", got, want)
			}
			snap := zone.Stats.Snapshot()
			if _, registered := resource.Types.ByName(string(typ)); registered {
				if got := snap.Types[typ].Refused; got != 3 {
					t.Errorf("the zone counts %d refused, want 3", got)
				}
			} else {
				if _, kept := snap.Types[typ]; kept {
					t.Errorf("the zone keeps counters for %q, a type the registry does not know", typ)
				}
				if snap.RefusedUnknown != 3 {
					t.Errorf("the zone counts %d refused of unknown types, want 3", snap.RefusedUnknown)
				}
			}

			// The session goes on: an accepted push is applied and acked.
			m := mesh(t, "default")
			ok := &v1alpha1.Push{Type: string(resource.MeshType), Nonce: "8", Resources: []*v1alpha1.WireResource{m}}
			if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: ok}}); err != nil {
				t.Fatal(err)
			}
			if ack := global.next(t).GetAck(); ack.GetNonce() != "8" || len(ack.GetErrors()) != 0 {
				t.Errorf("got %v, want a clean ack of nonce 8", ack)
			}
			if err := sameResources(ep.holding(resource.MeshType), map[string]*v1alpha1.WireResource{"/default": m}); err != nil {
				t.Error(err)
			}
			if got := ep.appliedTypes(); len(got) != 1 || got[resource.MeshType] != 1 {
				t.Errorf("Apply was called for %v, want only Mesh once", got)
			}
			zone.stillRunning(t)
		})
	}
}

func TestAnOversizedKeyInASubscriptionDoesNotStallTheSession(t *testing.T) {
	ep := newEndpoint()
	dp := dataplane(t, "dp-1", 8080)
	ep.want(resource.DataplaneType, dp)
	cfg := zoneConfig()
	cfg.MaxMessageSize = 256 << 10
	zone, global := peerOf(t, ep, cfg)

	huge := "default/" + strings.Repeat("x", 250<<10)
	sub := &v1alpha1.Subscribe{Type: string(resource.DataplaneType), InitialVersions: map[string]string{huge: "v1"}}
	if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Subscribe{Subscribe: sub}}); err != nil {
		t.Fatal(err)
	}
	push := global.next(t).GetPush()
	if len(push.GetResources()) != 1 || !proto.Equal(push.GetResources()[0], dp) {
		t.Fatalf("got %v, want a push of dp-1", push)
	}
	for _, k := range push.GetRemoved() {
		if k == huge {
			t.Errorf("the push removes a key longer than a message may be")
		}
	}
	if size := proto.Size(push); size > cfg.MaxMessageSize {
		t.Errorf("push is %d bytes, over the %d cap", size, cfg.MaxMessageSize)
	}

	// The session still answers.
	ok := &v1alpha1.Push{Type: string(resource.MeshType), Nonce: "1", Resources: []*v1alpha1.WireResource{mesh(t, "default")}}
	if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: ok}}); err != nil {
		t.Fatal(err)
	}
	if ack := global.next(t).GetAck(); ack.GetNonce() != "1" {
		t.Errorf("got %v, want the ack of nonce 1", ack)
	}
	zone.stillRunning(t)
}
