package kds

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // zones compress with gzip
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// Authenticator decides whether a stream may act as zone, from the
// credentials in ctx's metadata (a zone token: TokenHeader).
type Authenticator interface {
	// Authenticate returns the context the stream's session runs in: it
	// ends when the credential stops being valid (revoked, expired), with
	// a gRPC status as its cause. A refusal is a gRPC status error
	// (Unauthenticated, PermissionDenied) saying what to do.
	Authenticate(ctx context.Context, zone string) (context.Context, error)
}

// TokenHeader is the gRPC metadata key a zone's token travels in, as
// "Bearer TOKEN".
const TokenHeader = "authorization"

// AcceptAll admits every zone as the name it gives: for experiments only
// (the global's --kds-zone-auth none).
type AcceptAll struct{}

func (AcceptAll) Authenticate(ctx context.Context, _ string) (context.Context, error) {
	return ctx, nil
}

// ZoneHandler is the global's side of sessions.
type ZoneHandler interface {
	// Connect returns the endpoint for an identified zone's session.
	Connect(ctx context.Context, zone string, hello *v1alpha1.Hello) (Endpoint, error)
	// Started registers a running session; cancel ends it (a newer
	// connection of the same zone replaces an older one).
	Started(zone string, s *Session, cancel context.CancelFunc)
	// Ended unregisters it.
	Ended(zone string, s *Session, err error)
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
	Log           *slog.Logger
}

// Server is the global's KDS service.
type Server struct {
	v1alpha1.UnimplementedKDSServer
	cfg ServerConfig
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
	return &Server{cfg: cfg}
}

// GRPCServerOptions are the options the global's gRPC server needs:
// message limits, and keepalive rules matching the zones' pings.
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.cfg.Session.MaxMessageSize + envelope),
		grpc.MaxSendMsgSize(s.cfg.Session.MaxMessageSize + envelope),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
}

// Sync serves one zone's stream.
func (s *Server) Sync(stream v1alpha1.KDS_SyncServer) error {
	ctx := stream.Context()
	hello, err := recvHello(ctx, stream)
	if err != nil {
		return err
	}
	zone := hello.GetZone()
	if msg := resource.CheckName(zone); msg != "" {
		return status.Errorf(codes.InvalidArgument, "zone name %s", msg)
	}
	authCtx, err := s.cfg.Auth.Authenticate(ctx, zone)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.PermissionDenied, "zone %q: %v", zone, err)
	}
	ep, err := s.cfg.Handler.Connect(ctx, zone, hello)
	if err != nil {
		return status.Errorf(codes.Unavailable, "zone %q: %v", zone, err)
	}
	if err := stream.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{
		Hello: &v1alpha1.Hello{InstanceId: s.cfg.InstanceID, HeartbeatMs: s.cfg.ZoneHeartbeat.Milliseconds(), ClusterId: s.cfg.ClusterID},
	}}); err != nil {
		return err
	}
	cfg := s.cfg.Session
	cfg.Log = s.cfg.Log.With("zone", zone)
	session := NewSession(stream, ep, cfg)
	ctx, cancel := context.WithCancel(authCtx)
	defer cancel()
	s.cfg.Handler.Started(zone, session, cancel)
	cfg.Log.Info("zone connected", "instance", hello.GetInstanceId(), "version", hello.GetVersion())
	err = session.Run(ctx)
	s.cfg.Handler.Ended(zone, session, err)
	cfg.Log.Info("zone disconnected", "reason", err)
	if cause := context.Cause(authCtx); cause != nil && stream.Context().Err() == nil {
		if _, ok := status.FromError(cause); ok {
			return cause // the credential stopped being valid
		}
	}
	if status.Code(err) == codes.Canceled || err == context.Canceled {
		return status.Error(codes.Aborted, "session ended: a newer connection of this zone replaced it, or the global is stopping")
	}
	return err
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
