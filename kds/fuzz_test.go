package kds_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/kds"
)

// probeNonce marks the push that follows the fuzzed message: the session
// handles messages in order, so once it acknowledges the probe, it has
// handled the fuzzed message.
const probeNonce = "fuzz-probe"

// oneMessageStream hands a session one message from the peer once the
// session has sent its subscriptions, then the probe.
type oneMessageStream struct {
	msg        *v1alpha1.SyncMessage
	handled    chan struct{}
	subscribed chan struct{}
	closed     chan struct{}
	once       sync.Once
	recvs      int // only the session's reading goroutine touches it

	mu         sync.Mutex
	sent       []*v1alpha1.SyncMessage
	subscribes int // still to come before msg is handed over
	probed     bool
}

func newOneMessageStream(msg *v1alpha1.SyncMessage, subscribes int) *oneMessageStream {
	s := &oneMessageStream{
		msg: msg, handled: make(chan struct{}), subscribed: make(chan struct{}), closed: make(chan struct{}),
		subscribes: subscribes,
	}
	if subscribes == 0 {
		close(s.subscribed)
	}
	return s
}

func (s *oneMessageStream) Send(m *v1alpha1.SyncMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	if m.GetSubscribe() != nil && s.subscribes > 0 {
		if s.subscribes--; s.subscribes == 0 {
			close(s.subscribed)
		}
	}
	if m.GetAck().GetNonce() == probeNonce && !s.probed {
		s.probed = true
		close(s.handled)
	}
	return nil
}

func (s *oneMessageStream) Recv() (*v1alpha1.SyncMessage, error) {
	s.recvs++
	switch s.recvs {
	case 1:
		select {
		case <-s.subscribed:
			return s.msg, nil
		case <-s.closed:
		}
	case 2:
		return &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: &v1alpha1.Push{
			Type: string(resource.MeshType), Nonce: probeNonce,
		}}}, nil
	}
	<-s.closed
	return nil, io.EOF
}

func (s *oneMessageStream) Close() { s.once.Do(func() { close(s.closed) }) }

func FuzzSessionRecv(f *testing.F) {
	// A zone's session: it sends Dataplane and ZoneIngress, receives Mesh
	// and ZoneIngress. Each push may carry 256 bytes of resources (the
	// cap less the session's 64 KiB envelope), so pushes split and short
	// inputs can hold keys too large for any push.
	cfg := zoneConfig()
	cfg.MaxMessageSize = 64<<10 + 256
	receives := map[resource.Type]bool{}
	for _, t := range cfg.Receive {
		receives[t] = true
	}
	var dps []*v1alpha1.WireResource
	for i := range 30 {
		dps = append(dps, dataplane(f, fmt.Sprintf("dp-%d", i), 8080))
	}
	ingress, otherIngress, defaultMesh := zoneIngress(f, "zone-1"), zoneIngress(f, "zone-2"), mesh(f, "default")

	msg := func(m any) *v1alpha1.SyncMessage {
		switch m := m.(type) {
		case *v1alpha1.Hello:
			return &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{Hello: m}}
		case *v1alpha1.Subscribe:
			return &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Subscribe{Subscribe: m}}
		case *v1alpha1.Push:
			return &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: m}}
		case *v1alpha1.Ack:
			return &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Ack{Ack: m}}
		case *v1alpha1.Heartbeat:
			return &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Heartbeat{Heartbeat: m}}
		}
		return &v1alpha1.SyncMessage{}
	}
	seeds := []*v1alpha1.SyncMessage{
		msg(&v1alpha1.Hello{InstanceId: "global-1"}),
		msg(&v1alpha1.Subscribe{Type: "Dataplane", InitialVersions: map[string]string{
			"default/dp-1": dps[1].GetVersion(), "default/dp-2": "stale", "default/gone": "v1",
		}}),
		msg(&v1alpha1.Subscribe{Type: "ZoneIngress"}),
		msg(&v1alpha1.Subscribe{Type: "Dataplane", InitialVersions: map[string]string{"default/" + strings.Repeat("x", 300): "v1"}}),
		msg(&v1alpha1.Subscribe{Type: "Mesh"}),
		msg(&v1alpha1.Push{Type: "Mesh", Nonce: "1", Resources: []*v1alpha1.WireResource{defaultMesh}, Removed: []string{"/old"}}),
		msg(&v1alpha1.Push{Type: "ZoneIngress", Nonce: "2", Resources: []*v1alpha1.WireResource{otherIngress, {Name: "refused"}}}),
		msg(&v1alpha1.Push{Type: "Dataplane", Nonce: "3", Resources: dps[:3]}),
		msg(&v1alpha1.Ack{Type: "Dataplane", Nonce: "1"}),
		msg(&v1alpha1.Ack{Type: "Dataplane", Nonce: "9", Errors: []*v1alpha1.ResourceError{{Key: "default/dp-1", Message: "no"}}}),
		msg(&v1alpha1.Heartbeat{Time: timestamppb.New(time.Unix(1700000000, 0))}),
		{},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("not a protobuf"))
	f.Add([]byte{0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, data []byte) {
		in := &v1alpha1.SyncMessage{}
		if proto.Unmarshal(data, in) != nil {
			return
		}
		ep := newEndpoint()
		ep.want(resource.DataplaneType, dps...)
		ep.want(resource.ZoneIngressType, ingress)
		ep.hold(resource.MeshType, defaultMesh)
		ep.hold(resource.ZoneIngressType, otherIngress)
		ep.refuse["/refused"] = "refused by the test"
		stream := newOneMessageStream(in, len(cfg.Receive))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- kds.NewSession(stream, ep, cfg).Run(ctx) }()

		ended := false
		select {
		case <-stream.handled:
		case err := <-done:
			ended = true
			if err == nil {
				t.Fatal("Run returned nil before its context ended")
			}
		case <-time.After(waitFor):
			t.Fatalf("the session neither handled %.200v nor ended within %v", in, waitFor)
		}
		cancel()
		stream.Close()
		if !ended {
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Fatalf("Run did not return within %v of its context ending", waitFor)
			}
		}

		for typ := range ep.appliedTypes() {
			if !receives[typ] {
				t.Errorf("Apply got %q, which the zone does not receive", typ)
			}
		}
		stream.mu.Lock()
		defer stream.mu.Unlock()
		for _, m := range stream.sent {
			if m.GetPush() != nil && proto.Size(m) > cfg.MaxMessageSize {
				t.Errorf("sent a push of %d bytes, over the %d cap", proto.Size(m), cfg.MaxMessageSize)
			}
		}
	})
}
