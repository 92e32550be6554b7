package xdsrelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Relay forwards Envoy's gRPC streams to the zone's xDS server.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	maxSize int
	conn    *grpc.ClientConn
	// streams counts the copying goroutines of open streams: Run waits
	// for them before it closes conn.
	streams sync.WaitGroup
	ran     atomic.Bool
}

// streamDesc describes every relayed stream: bidirectional, whatever
// Envoy opened (a unary or server-streaming call is a special case).
var streamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// New checks cfg and prepares the connection to the zone. Nothing is
// dialled until the first stream: the connection is made, and remade,
// as streams need it, with keepalive pings that find a dead zone behind
// a silent network.
func New(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "xds-relay")
	creds := insecure.NewCredentials()
	if len(cfg.CAPEM) > 0 {
		pool, err := certPool(cfg.CAPEM)
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(cfg.Upstream) // checked by Validate
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
	}
	size := cfg.maxMessageSize()
	conn, err := grpc.NewClient(cfg.Upstream,
		grpc.WithTransportCredentials(creds),
		// The zone's xDS server lets clients ping every 10s at most.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(passThrough{}),
			grpc.MaxCallRecvMsgSize(size),
			grpc.MaxCallSendMsgSize(size),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("xds relay upstream %q: %w", cfg.Upstream, err)
	}
	return &Relay{cfg: cfg, log: log, maxSize: size, conn: conn}, nil
}

// Run serves Envoy's streams on lis until ctx ends, then stops: it closes
// lis, ends the open streams (Envoy's and the zone's), and closes the
// connection to the zone. A Relay runs once.
func (r *Relay) Run(ctx context.Context, lis net.Listener) error {
	if !r.ran.CompareAndSwap(false, true) {
		lis.Close()
		return errors.New("xds relay: Run called twice: make a new Relay with New")
	}
	defer r.conn.Close()
	srv := grpc.NewServer(
		grpc.UnknownServiceHandler(r.relay),
		grpc.WaitForHandlers(true), // Stop returns once every handler has
		grpc.ForceServerCodecV2(passThrough{}),
		grpc.MaxRecvMsgSize(r.maxSize),
		grpc.MaxSendMsgSize(r.maxSize),
		// Envoy is local; let it keep its connection alive as it likes.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	)
	r.log.Info("xds relay serving", "listen", lis.Addr().String(), "upstream", r.cfg.Upstream, "tls", len(r.cfg.CAPEM) > 0)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	var err error
	select {
	case <-ctx.Done():
		// Envoy is stopped before the relay; streams still open end now
		// rather than wait for a graceful stop that would never come.
		srv.Stop()
		<-errc
	case err = <-errc:
		srv.Stop()
		err = fmt.Errorf("xds relay serving on %s: %w", lis.Addr(), err)
	}
	r.streams.Wait()
	return err
}

// relay is the handler of every method: it opens the same method at the
// zone with the pod's current token and copies messages both ways until
// either side ends the stream.
func (r *Relay) relay(_ any, down grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(down)
	if !ok {
		return status.Error(codes.Internal, "xds relay: the stream has no method")
	}
	token, err := readToken(r.cfg.TokenFile)
	if err != nil {
		r.log.Warn("refusing stream", "method", method, "error", err)
		return err
	}
	in, _ := metadata.FromIncomingContext(down.Context())
	md := forwarded(in)
	md.Set(authorizationKey, "Bearer "+token)
	ctx, cancel := context.WithCancel(down.Context())
	defer cancel()
	up, err := r.conn.NewStream(metadata.NewOutgoingContext(ctx, md), streamDesc, method)
	if err != nil {
		r.log.Info("opening stream at the zone failed", "method", method, "error", err)
		return err // a status: Unavailable while the zone cannot be reached
	}
	r.log.Debug("stream opened", "method", method)

	// Both goroutines end once the stream ends: down.RecvMsg returns when
	// this handler has returned, up's calls once ctx is cancelled.
	r.streams.Add(2)
	fromEnvoy := make(chan error, 1)
	go func() {
		defer r.streams.Done()
		fromEnvoy <- toZone(down, up)
	}()
	fromZone := make(chan error, 1)
	go func() {
		defer r.streams.Done()
		fromZone <- toEnvoy(up, down)
	}()
	for {
		select {
		case err := <-fromEnvoy:
			if err == nil {
				continue // Envoy closed its side, or the zone ended: wait for the zone's status
			}
			// Envoy went away, or sent what cannot be relayed: end the
			// zone's stream, and say why to Envoy if it still listens.
			cancel()
			<-fromZone
			r.log.Debug("stream ended by envoy", "method", method, "error", err)
			return err
		case err := <-fromZone:
			var ended *zoneEnded
			if errors.As(err, &ended) {
				down.SetTrailer(forwarded(up.Trailer()))
				err = ended.err
				r.log.Debug("stream ended by the zone", "method", method, "error", err)
			}
			return err
		}
	}
}

// zoneEnded carries the zone's status for the stream (nil for OK): the
// zone's trailers are then available.
type zoneEnded struct{ err error }

func (e *zoneEnded) Error() string {
	if e.err == nil {
		return "the zone ended the stream"
	}
	return e.err.Error()
}

// toZone copies Envoy's messages to the zone. It returns nil when Envoy
// closed its side (the zone's is closed too) or when the zone's stream
// ended (its status comes from toEnvoy), and Envoy's error otherwise.
func toZone(down grpc.ServerStream, up grpc.ClientStream) error {
	for {
		f := &frame{}
		if err := down.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				return up.CloseSend()
			}
			return err
		}
		if err := up.SendMsg(f); err != nil {
			f.data.Free()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err // this side's failure, such as a message too large
		}
	}
}

// toEnvoy copies the zone's headers and messages to Envoy. It returns a
// *zoneEnded when the zone ended the stream, and Envoy's error when
// sending to it failed.
func toEnvoy(up grpc.ClientStream, down grpc.ServerStream) error {
	if h, err := up.Header(); err == nil {
		if h = forwarded(h); len(h) > 0 {
			if err := down.SendHeader(h); err != nil {
				return err
			}
		}
	}
	for {
		f := &frame{}
		if err := up.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				return &zoneEnded{}
			}
			return &zoneEnded{err: err}
		}
		if err := down.SendMsg(f); err != nil {
			f.data.Free()
			return err
		}
	}
}
