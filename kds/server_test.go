package kds_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/kds"
)

// fakeHandler gives every zone an empty endpoint.
type fakeHandler struct{}

func (fakeHandler) Connect(context.Context, string, *v1alpha1.Hello) (kds.Endpoint, error) {
	return newEndpoint(), nil
}
func (fakeHandler) Claim(string, kds.Peer, *kds.Session, context.CancelFunc) error { return nil }
func (fakeHandler) Started(string, *kds.Session)                                   {}
func (fakeHandler) Ended(string, *kds.Session, error)                              {}

// serve runs a KDS server with limits on loopback and returns a client
// connection to it.
func serve(t *testing.T, limits kds.Limits) *grpc.ClientConn {
	t.Helper()
	srv := kds.NewServer(kds.ServerConfig{Handler: fakeHandler{}, InstanceID: "test", Limits: limits})
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	v1alpha1.RegisterKDSServer(gs, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func openSync(t *testing.T, conn *grpc.ClientConn) v1alpha1.KDS_SyncClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := v1alpha1.NewKDSClient(conn).Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// hello identifies stream as zone and waits for the server's Hello.
func hello(t *testing.T, stream v1alpha1.KDS_SyncClient, zone string) {
	t.Helper()
	if err := stream.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{Hello: &v1alpha1.Hello{Zone: zone}}}); err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.GetHello() == nil {
		t.Fatalf("no hello from the server: %v %v", m, err)
	}
}

// refused waits for stream to end and checks it ended with code.
func refused(t *testing.T, stream v1alpha1.KDS_SyncClient, code codes.Code, mentions string) {
	t.Helper()
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != code {
			t.Fatalf("the stream ended with %v, want %s", err, code)
		}
		if msg := status.Convert(err).Message(); mentions != "" && !strings.Contains(msg, mentions) {
			t.Errorf("the error %q does not name %q", msg, mentions)
		}
		return
	}
}

func TestStreamsBeyondTheLimitAreRefused(t *testing.T) {
	conn := serve(t, kds.Limits{Streams: 2})
	a, b := openSync(t, conn), openSync(t, conn)
	hello(t, a, "zone-a")
	hello(t, b, "zone-b")
	refused(t, openSync(t, conn), codes.ResourceExhausted, "kds.maxStreams")

	// A slot freed is a slot taken again.
	if err := a.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := a.Recv(); err != nil {
			break
		}
	}
	eventually(t, func() error {
		c := openSync(t, conn)
		if err := c.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{Hello: &v1alpha1.Hello{Zone: "zone-c"}}}); err != nil {
			return err
		}
		_, err := c.Recv()
		return err
	})
}

func TestStreamsNotYetIdentifiedAreBounded(t *testing.T) {
	for setting, limits := range map[string]kds.Limits{
		"(kds.maxPendingStreams)":        {PendingStreams: 2},
		"(kds.maxPendingStreamsPerPeer)": {PendingStreamsPerPeer: 2},
	} {
		t.Run(setting, func(t *testing.T) { pendingStreamsAreBounded(t, limits, setting) })
	}
}

func pendingStreamsAreBounded(t *testing.T, limits kds.Limits, setting string) {
	conn := serve(t, limits)
	// Three streams, none identified yet: whichever the server takes last
	// is refused at once; the other two wait for their Hello.
	type result struct {
		i   int
		msg *v1alpha1.SyncMessage
		err error
	}
	results := make(chan result, 3)
	var streams []v1alpha1.KDS_SyncClient
	for i := range 3 {
		s := openSync(t, conn)
		streams = append(streams, s)
		go func() {
			m, err := s.Recv()
			results <- result{i, m, err}
		}()
	}
	first := <-results
	if status.Code(first.err) != codes.ResourceExhausted {
		t.Fatalf("the first stream to end got %v %v, want ResourceExhausted", first.msg, first.err)
	}
	if msg := status.Convert(first.err).Message(); !strings.Contains(msg, setting) {
		t.Errorf("the error %q does not name %s", msg, setting)
	}
	for i, s := range streams {
		if i == first.i {
			continue
		}
		if err := s.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{Hello: &v1alpha1.Hello{Zone: "zone-" + string(rune('a'+i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if r := <-results; r.msg.GetHello() == nil {
			t.Errorf("stream %d got %v %v, want the server's hello", r.i, r.msg, r.err)
		}
	}
	// Identified streams gave their slots back.
	hello(t, openSync(t, conn), "zone-d")
}

func TestAnOverlongZoneNameIsNotEchoed(t *testing.T) {
	conn := serve(t, kds.Limits{})
	s := openSync(t, conn)
	long := make([]byte, 1<<20)
	for i := range long {
		long[i] = 'a'
	}
	if err := s.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{Hello: &v1alpha1.Hello{Zone: string(long)}}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Recv()
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	if msg := status.Convert(err).Message(); len(msg) > 200 || !strings.Contains(msg, "at most 63") {
		t.Errorf("the error is %d bytes (%.100q): want a short one saying the limit", len(msg), msg)
	}
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	conn := serve(t, kds.Limits{IdleConnection: 50 * time.Millisecond})
	s := openSync(t, conn)
	hello(t, s, "zone-a")
	if conn.GetState() != connectivity.Ready {
		t.Fatalf("connection %s with a live stream, want READY", conn.GetState())
	}
	// A connection with a stream is never idle; once the stream ends, the
	// server closes it and the client leaves READY.
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := s.Recv(); err != nil {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for conn.GetState() == connectivity.Ready {
		if !conn.WaitForStateChange(ctx, connectivity.Ready) {
			t.Fatalf("the idle connection was not closed within %v", waitFor)
		}
	}
}

func TestConnectionsPerPeerAreLimited(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	limited := kds.LimitPerPeer(ln, 2)
	t.Cleanup(func() { limited.Close() })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := limited.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	third := dial()
	if n, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a third connection from the same address read %d bytes, err %v: want it closed", n, err)
	}
	first.Close()
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(waitFor):
		t.Fatal("a connection was not accepted after another one from the same address closed")
	}
	second.Close()
}
