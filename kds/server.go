package kds

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // zones compress with gzip
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// Authenticator checks a stream's credentials (a zone token in
// TokenHeader) before anything is read from the stream, so a peer without
// them cannot make the global hold even its first message.
type Authenticator interface {
	// Authenticate refuses with a gRPC status error (Unauthenticated)
	// saying what to do, or returns what the credentials admit.
	Authenticate(ctx context.Context) (Credential, error)
}

// Credential is what a stream's credentials admit.
type Credential interface {
	// Admit checks that the credential may act as zone, the name the
	// stream's Hello gives (PermissionDenied otherwise), and returns the
	// context the session runs in: it ends when the credential stops being
	// valid (revoked, expired), with a gRPC status as its cause.
	Admit(zone string) (context.Context, error)
}

// TokenHeader is the gRPC metadata key a zone's token travels in, as
// "Bearer TOKEN".
const TokenHeader = "authorization"

// AcceptAll admits every zone as the name it gives: for experiments only
// (the global's --kds-zone-auth none).
type AcceptAll struct{}

func (AcceptAll) Authenticate(ctx context.Context) (Credential, error) { return anyZone{ctx}, nil }

type anyZone struct{ ctx context.Context }

func (a anyZone) Admit(string) (context.Context, error) { return a.ctx, nil }

// ZoneHandler is the global's side of sessions.
type ZoneHandler interface {
	// Connect returns the endpoint for an identified zone's session.
	Connect(ctx context.Context, zone string, hello *v1alpha1.Hello) (Endpoint, error)
	// Claim registers a session before the global's Hello is sent;
	// cancel ends it. It may refuse the session with a gRPC status error
	// (AlreadyExists: another zone process holds the name), which the
	// newcomer receives instead of the Hello. It must not wait on I/O: a
	// zone's connect waits for it.
	Claim(zone string, from Peer, s *Session, cancel context.CancelFunc) error
	// Started is called once the claimed session runs (the Hello is sent).
	Started(zone string, s *Session)
	// Ended unregisters a claimed session.
	Ended(zone string, s *Session, err error)
}

// Peer is the zone process at the other end of a stream.
type Peer struct {
	// Instance is the process's instance id, from its Hello.
	Instance string
	// Addr is its network address, host:port ("" on in-process transports).
	Addr string
}

// ServerConfig configures the global's KDS server.
type ServerConfig struct {
	Handler    ZoneHandler
	Auth       Authenticator
	InstanceID string
	// ClusterID identifies the state the global serves; zones remember it
	// (see Hello.cluster_id).
	ClusterID string
	// ZoneHeartbeat is how often zones must send heartbeats (0: their default).
	ZoneHeartbeat time.Duration
	Session       SessionConfig
	Limits        Limits
	Log           *slog.Logger
}

// Limits bound what clients may hold open on the KDS server. Zero fields
// take the defaults.
type Limits struct {
	// Streams bounds concurrent Sync streams; a zone holds one.
	Streams int
	// PendingStreams bounds streams that have not yet been identified (a
	// Hello received and its credentials checked); each has 10s for it.
	PendingStreams int
	// PendingStreamsPerPeer bounds, per client IP address, the streams not
	// yet identified: one host cannot hold every pending slot.
	PendingStreamsPerPeer int
	// StreamsPerConnection bounds concurrent streams on one connection
	// (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
	StreamsPerConnection uint32
	// IdleConnection closes a connection that has carried no stream for
	// this long.
	IdleConnection time.Duration
}

// Defaults for Limits.
const (
	DefaultMaxStreams            = 10000
	DefaultMaxPendingStreams     = 256
	DefaultPendingStreamsPerPeer = 16
	DefaultStreamsPerConnection  = 8
	DefaultIdleConnection        = 5 * time.Minute
)

func (l Limits) withDefaults() Limits {
	if l.Streams <= 0 {
		l.Streams = DefaultMaxStreams
	}
	if l.PendingStreams <= 0 {
		l.PendingStreams = DefaultMaxPendingStreams
	}
	if l.PendingStreamsPerPeer <= 0 {
		l.PendingStreamsPerPeer = DefaultPendingStreamsPerPeer
	}
	if l.StreamsPerConnection == 0 {
		l.StreamsPerConnection = DefaultStreamsPerConnection
	}
	if l.IdleConnection <= 0 {
		l.IdleConnection = DefaultIdleConnection
	}
	return l
}

// Server is the global's KDS service.
type Server struct {
	v1alpha1.UnimplementedKDSServer
	cfg ServerConfig
	// streams and pending are semaphores: a slot per stream, and per
	// stream not yet identified.
	streams, pending chan struct{}
	// pendingMu guards pendingByPeer, the streams not yet identified by
	// client IP address (entries at zero are deleted).
	pendingMu     sync.Mutex
	pendingByPeer map[string]int
}

// NewServer returns the service; register it with Register.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Auth == nil {
		cfg.Auth = AcceptAll{}
	}
	cfg.Session.Send = SentBy(resource.Types, GlobalSide)
	cfg.Session.Receive = ReceivedBy(resource.Types, GlobalSide)
	if cfg.Session.MaxMessageSize <= envelope {
		cfg.Session.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Limits = cfg.Limits.withDefaults()
	return &Server{cfg: cfg,
		streams:       make(chan struct{}, cfg.Limits.Streams),
		pending:       make(chan struct{}, cfg.Limits.PendingStreams),
		pendingByPeer: map[string]int{},
	}
}

// GRPCServerOptions are the options the global's gRPC server needs:
// message limits, streams per connection, idle connections closed, and
// keepalive rules matching the zones' pings.
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.cfg.Session.MaxMessageSize + envelope),
		grpc.MaxSendMsgSize(s.cfg.Session.MaxMessageSize + envelope),
		grpc.MaxConcurrentStreams(s.cfg.Limits.StreamsPerConnection),
		// Fixed flow-control windows, without gRPC's dynamic growth: what
		// the transport buffers for a stream whose session stopped reading
		// is at most one window, whatever the peer does.
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(4 * streamWindow),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time: 30 * time.Second, Timeout: 10 * time.Second, MaxConnectionIdle: s.cfg.Limits.IdleConnection,
		}),
	}
}

// streamWindow is the HTTP/2 flow-control window of each KDS stream.
const streamWindow = 1 << 20

// acquire takes a slot of sem, or says which limit is reached.
func acquire(sem chan struct{}, what, setting string) (release func(), err error) {
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	default:
		return nil, status.Errorf(codes.ResourceExhausted,
			"the global already serves %d %s (%s): retry later, or raise the limit", cap(sem), what, setting)
	}
}

// Sync serves one zone's stream.
func (s *Server) Sync(stream v1alpha1.KDS_SyncServer) error {
	ctx := stream.Context()
	release, err := acquire(s.streams, "KDS streams", "kds.maxStreams")
	if err != nil {
		return err
	}
	defer release()
	zone, hello, authCtx, err := s.identify(ctx, stream)
	if err != nil {
		return err
	}
	ep, err := s.cfg.Handler.Connect(ctx, zone, hello)
	if err != nil {
		return status.Errorf(codes.Unavailable, "zone %q: %v", zone, err)
	}
	cfg := s.cfg.Session
	cfg.Log = s.cfg.Log.With("zone", zone)
	session := NewSession(stream, ep, cfg)
	ctx, cancel := context.WithCancel(authCtx)
	defer cancel()
	// Registered before the Hello is sent: a refused newcomer gets the
	// refusal, never a Hello that would make it believe it is connected.
	from := Peer{Instance: hello.GetInstanceId(), Addr: peerAddr(ctx)}
	if len(from.Instance) > maxInstanceID { // kept and logged: bounded
		from.Instance = from.Instance[:maxInstanceID]
	}
	if err := s.cfg.Handler.Claim(zone, from, session, cancel); err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.Unavailable, "zone %q: %v", zone, err)
	}
	if err := stream.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{
		Hello: &v1alpha1.Hello{InstanceId: s.cfg.InstanceID, HeartbeatMs: s.cfg.ZoneHeartbeat.Milliseconds(), ClusterId: s.cfg.ClusterID},
	}}); err != nil {
		s.cfg.Handler.Ended(zone, session, err)
		return err
	}
	s.cfg.Handler.Started(zone, session)
	cfg.Log.Info("zone connected", "instance", from.Instance, "version", hello.GetVersion())
	err = session.Run(ctx)
	s.cfg.Handler.Ended(zone, session, err)
	cfg.Log.Info("zone disconnected", "reason", err)
	if cause := context.Cause(authCtx); cause != nil && stream.Context().Err() == nil {
		if _, ok := status.FromError(cause); ok {
			return cause // the credential stopped being valid
		}
	}
	if status.Code(err) == codes.Canceled || err == context.Canceled {
		return status.Error(codes.Aborted, "session ended: a newer connection of this zone replaced it (this process reconnected, or it was silent for longer than the global's kds.zoneOfflineAfter), or the global is stopping")
	}
	return err
}

// identify checks the stream's credentials, reads the Hello and admits the
// zone it names, holding a slot of the streams not yet identified
// meanwhile. It returns the context the session runs in.
func (s *Server) identify(ctx context.Context, stream Stream) (string, *v1alpha1.Hello, context.Context, error) {
	release, err := acquire(s.pending, "streams waiting to be identified", "kds.maxPendingStreams")
	if err != nil {
		return "", nil, nil, err
	}
	defer release()
	releasePeer, err := s.acquirePeer(ctx)
	if err != nil {
		return "", nil, nil, err
	}
	defer releasePeer()
	cred, err := s.cfg.Auth.Authenticate(ctx)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return "", nil, nil, err
		}
		return "", nil, nil, status.Errorf(codes.Unauthenticated, "%v", err)
	}
	hello, err := recvHello(ctx, stream)
	if err != nil {
		return "", nil, nil, err
	}
	zone := hello.GetZone()
	if len(zone) > 63 { // not quoted back: it may be megabytes long
		return "", nil, nil, status.Errorf(codes.InvalidArgument, "zone name is %d characters long: use at most 63", len(zone))
	}
	if msg := resource.CheckZoneName(zone); msg != "" {
		return "", nil, nil, status.Errorf(codes.InvalidArgument, "zone name %s", msg)
	}
	authCtx, err := cred.Admit(zone)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return "", nil, nil, err
		}
		return "", nil, nil, status.Errorf(codes.PermissionDenied, "zone %q: %v", zone, err)
	}
	return zone, hello, authCtx, nil
}

// maxInstanceID bounds the instance id the global keeps of a zone process.
const maxInstanceID = 253

// peerAddr is the stream's client address, "" when the transport has none.
func peerAddr(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	return p.Addr.String()
}

// acquirePeer takes one of the pending slots of the stream's client address.
func (s *Server) acquirePeer(ctx context.Context) (release func(), err error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return func() {}, nil // in-process transports carry no address
	}
	ip := peerIP(p.Addr)
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if s.pendingByPeer[ip] >= s.cfg.Limits.PendingStreamsPerPeer {
		return nil, status.Errorf(codes.ResourceExhausted,
			"%s already has %d streams waiting to be identified (kds.maxPendingStreamsPerPeer): send the Hello first, or raise the limit", ip, s.pendingByPeer[ip])
	}
	s.pendingByPeer[ip]++
	return func() {
		s.pendingMu.Lock()
		defer s.pendingMu.Unlock()
		if s.pendingByPeer[ip]--; s.pendingByPeer[ip] <= 0 {
			delete(s.pendingByPeer, ip)
		}
	}, nil
}

// recvHello reads the first message, which must be a Hello, within 10s.
func recvHello(ctx context.Context, stream Stream) (*v1alpha1.Hello, error) {
	type result struct {
		msg *v1alpha1.SyncMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		msg, err := stream.Recv()
		ch <- result{msg, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := r.msg.GetHello()
		if h == nil {
			return nil, status.Errorf(codes.InvalidArgument, "%v: the first message must be a hello", ErrProtocol)
		}
		return h, nil
	case <-time.After(10 * time.Second):
		return nil, status.Error(codes.DeadlineExceeded, "no hello within 10s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var _ v1alpha1.KDSServer = (*Server)(nil)

// String names the side, for logs.
func (s *Server) String() string { return fmt.Sprintf("kds server %s", s.cfg.InstanceID) }
