package kds

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// ClientConfig configures a zone's connection to the global.
type ClientConfig struct {
	// Address is the global's KDS host:port, or several separated by
	// commas: replicas of one global, used one at a time.
	Address string
	// TLS verifies the global; nil means plaintext (explicitly insecure).
	TLS  *tls.Config
	Zone string
	// Token returns the zone token to present, read anew for every
	// connection (nil: none).
	Token      func() (string, error)
	InstanceID string
	Version    string
	Session    SessionConfig
	// MinBackoff and MaxBackoff bound the wait between reconnects.
	MinBackoff, MaxBackoff time.Duration
	// DuplicateBackoff caps the backoff while the global refuses this
	// zone because another process holds its name (AlreadyExists): once
	// that process is gone this one takes over within 1.5x this.
	DuplicateBackoff time.Duration
	Log              *slog.Logger
	// Features are what this zone understands beyond the first protocol,
	// sent in its Hello (FeaturePerServiceRecords).
	Features []string
	// OnHello, when set, sees the global's Hello before a session starts;
	// an error ends the connection attempt (retried with backoff).
	OnHello func(*v1alpha1.Hello) error
}

// DefaultDuplicateBackoff is ClientConfig.DuplicateBackoff's default.
const DefaultDuplicateBackoff = 4 * time.Second

// Client keeps a zone connected to the global.
type Client struct {
	cfg ClientConfig
	ep  Endpoint

	mu        sync.Mutex
	current   *Session
	end       context.CancelFunc // ends the current session
	lastErr   error
	refused   bool
	connected time.Time
	offline   time.Time
	peer      string // the global's address the live session reached
}

// NewClient returns a client serving ep; start it with Run.
func NewClient(cfg ClientConfig, ep Endpoint) *Client {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 15 * time.Second
	}
	if cfg.DuplicateBackoff <= 0 {
		cfg.DuplicateBackoff = DefaultDuplicateBackoff
	}
	if cfg.InstanceID == "" {
		// The global tells a reconnect of this process (same instance,
		// replaces its old stream) from another process using the same
		// zone name (refused): every process needs its own.
		cfg.InstanceID = fmt.Sprintf("%s-%08x", cfg.Zone, rand.Uint32())
	}
	if cfg.Session.MaxMessageSize <= envelope {
		cfg.Session.MaxMessageSize = DefaultMaxMessageSize
	}
	cfg.Session.Send = SentBy(resource.Types, ZoneSide)
	cfg.Session.Receive = ReceivedBy(resource.Types, ZoneSide)
	cfg.Session.Log = cfg.Log
	return &Client{cfg: cfg, ep: ep, offline: time.Now()}
}

// Changed tells the live session, if any, that t changed locally. Without
// a session nothing is queued: the next session reconciles the full state.
func (c *Client) Changed(t resource.Type) {
	c.mu.Lock()
	s := c.current
	c.mu.Unlock()
	if s != nil {
		s.Changed(t)
	}
}

// ChangedKeys tells the live session, if any, that only the resources of
// t with these wire keys changed locally (Session.ChangedKeys).
func (c *Client) ChangedKeys(t resource.Type, keys ...string) {
	c.mu.Lock()
	s := c.current
	c.mu.Unlock()
	if s != nil {
		s.ChangedKeys(t, keys...)
	}
}

// Reconnect ends the live session, if any; Run connects again, and the
// new session reconciles the full state.
func (c *Client) Reconnect() {
	c.mu.Lock()
	end := c.end
	c.mu.Unlock()
	if end != nil {
		end()
	}
}

// Status is the zone's view of its connection.
type Status struct {
	Connected bool
	Since     time.Time
	LastError string
	// Refused is set while the global refuses this zone's credentials
	// (its last answer was Unauthenticated or PermissionDenied).
	Refused bool
	// Peer is the address of the global (the replica) the live session
	// reached.
	Peer    string
	Session *Snapshot
}

// Status reports the connection and the live session's counters.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Connected: c.current != nil, Since: c.offline}
	if c.current != nil {
		st.Since, st.Peer = c.connected, c.peer
		snap := c.current.Stats.Snapshot()
		st.Session = &snap
	}
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	st.Refused = c.refused
	return st
}

// Run connects, and reconnects with exponential backoff and jitter, until
// ctx ends.
func (c *Client) Run(ctx context.Context) error {
	creds := insecure.NewCredentials()
	if c.cfg.TLS != nil {
		creds = credentials.NewTLS(c.cfg.TLS)
	}
	target, opts, err := dialTarget(c.cfg.Address)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(target, append(opts,
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(
			grpc.UseCompressor(gzip.Name),
			grpc.MaxCallRecvMsgSize(c.cfg.Session.MaxMessageSize+envelope),
			grpc.MaxCallSendMsgSize(c.cfg.Session.MaxMessageSize+envelope),
		),
	)...)
	if err != nil {
		return fmt.Errorf("global address %q: %w", c.cfg.Address, err)
	}
	defer conn.Close()
	client := v1alpha1.NewKDSClient(conn)
	backoff := c.cfg.MinBackoff
	for {
		started := time.Now()
		err := c.session(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		code := status.Code(err)
		refused := code == codes.Unauthenticated || code == codes.PermissionDenied
		c.mu.Lock()
		c.lastErr, c.refused = err, refused
		c.mu.Unlock()
		if time.Since(started) > time.Minute {
			backoff = c.cfg.MinBackoff // it was a healthy session
		}
		duplicate := code == codes.AlreadyExists
		if duplicate {
			backoff = min(backoff, c.cfg.DuplicateBackoff)
		}
		wait := backoff/2 + rand.N(backoff) // jitter: 0.5x to 1.5x
		switch {
		case refused:
			c.cfg.Log.Error("the global refused this zone's credentials; retrying", "address", c.cfg.Address, "error", status.Convert(err).Message(), "retryIn", wait.Round(time.Millisecond))
		case duplicate:
			c.cfg.Log.Error("the global refused this zone: another process is connected with the same zone name; retrying, this one takes over once the other is gone",
				"address", c.cfg.Address, "error", status.Convert(err).Message(), "retryIn", wait.Round(time.Millisecond))
		default:
			c.cfg.Log.Warn("connection to the global lost; retrying", "address", c.cfg.Address, "error", err, "retryIn", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

func (c *Client) session(ctx context.Context, client v1alpha1.KDSClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.cfg.Token != nil {
		token, err := c.cfg.Token()
		if err != nil {
			return status.Error(codes.Unauthenticated, err.Error())
		}
		ctx = metadata.AppendToOutgoingContext(ctx, TokenHeader, "Bearer "+token)
	}
	stream, err := client.Sync(ctx, grpc.WaitForReady(false))
	if err != nil {
		return err
	}
	if err := stream.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{Hello: &v1alpha1.Hello{
		Zone: c.cfg.Zone, InstanceId: c.cfg.InstanceID, Version: c.cfg.Version, Features: c.cfg.Features,
	}}}); err != nil {
		return err
	}
	hello, err := recvHello(ctx, stream)
	if err != nil {
		return err
	}
	if c.cfg.OnHello != nil {
		if err := c.cfg.OnHello(hello); err != nil {
			return err
		}
	}
	cfg := c.cfg.Session
	if hb := time.Duration(hello.GetHeartbeatMs()) * time.Millisecond; hb > 0 {
		cfg.Heartbeat = max(hb, 100*time.Millisecond)
	}
	s := NewSession(stream, c.ep, cfg)
	// Which replica of the global this session reached, when there are
	// several addresses (or a name with several).
	var to string
	if p, ok := peer.FromContext(stream.Context()); ok && p.Addr != nil {
		to = p.Addr.String()
	}
	c.mu.Lock()
	c.current, c.connected, c.refused, c.end, c.peer = s, time.Now(), false, cancel, to
	c.mu.Unlock()
	c.cfg.Log.Info("connected to the global", "address", c.cfg.Address, "peer", to, "global", hello.GetInstanceId())
	err = s.Run(ctx)
	c.mu.Lock()
	c.current, c.offline, c.end = nil, time.Now(), nil
	c.mu.Unlock()
	if err == nil {
		err = errors.New("session ended")
	}
	return err
}

// pickFirstShuffled is the service config of the connection to the
// global: one replica at a time (pick_first), tried in an order of this
// process's own, so that zones spread over the replicas and fail over to
// the next when theirs goes.
const pickFirstShuffled = `{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`

// dialTarget is the gRPC target and options for address: host:port (a
// name resolving to several addresses reaches each of them), or several
// host:port separated by commas, replicas of one global, each verified
// under its own host name over TLS.
func dialTarget(address string) (string, []grpc.DialOption, error) {
	opts := []grpc.DialOption{grpc.WithDefaultServiceConfig(pickFirstShuffled)}
	if !strings.Contains(address, ",") {
		return address, opts, nil
	}
	var addrs []resolver.Address
	for _, a := range strings.Split(address, ",") {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return "", nil, fmt.Errorf("global address %q: %w", a, err)
		}
		addrs = append(addrs, resolver.Address{Addr: a, ServerName: host})
	}
	r := manual.NewBuilderWithScheme("atoll-global")
	r.InitialState(resolver.State{Addresses: addrs})
	return r.Scheme() + ":///replicas", append(opts, grpc.WithResolvers(r)), nil
}
