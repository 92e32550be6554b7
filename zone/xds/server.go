package xds

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/throttle"
)

// Config configures a Server.
type Config struct {
	// Addr is where proxies connect (gRPC, ADS); port 0 picks a free one.
	Addr string
	// Listener, when set, is Addr already bound: Run serves on it, so
	// the caller learns of a taken port before it starts anything.
	Listener net.Listener
	Zone     string
	Domain   string
	// Cache holds the zone's Meshes, ZoneIngresses and ServiceEndpoints.
	Cache *store.Cache
	// Store is the zone's store: its Dataplanes are mirrored in memory only
	// while proxies are connected.
	Store interface {
		store.Reader
		store.Watcher
	}
	// VIPs returns a mesh's service VIPs.
	VIPs func(mesh string) map[string]netip.Addr
	// ServiceAddresses, when set, returns the addresses a mesh's services
	// have of their own (in Kubernetes, each Service's ClusterIP:port, by
	// service name): Envoy proxies get outbound listeners on them too (see
	// Input.ServiceAddresses). It is called on every rebuild, so it should
	// cost a map read; call Changed after what it returns changes. The
	// server does not modify the maps and slices it returns.
	ServiceAddresses func(mesh string) map[string][]netip.AddrPort
	// Ingress is where the zone's ingress listens and the certificate it
	// presents; its proxy connects with node.id = the zone's name.
	Ingress IngressConfig
	// TLS, when set, serves xDS over TLS; CA returns the CA (PEM) that
	// signed its certificate, written into the bootstraps and served at
	// /xds-ca.pem. CA is called on each of those requests, so a CA renewed
	// on disk shows without a restart.
	TLS *tls.Config
	CA  func() []byte
	// TokenKey signs proxies' tokens (LoadOrCreateTokenKey); empty makes a
	// key for this process only.
	TokenKey []byte
	// RequireTokens refuses Dataplanes' proxies without a token (the
	// ingress's always needs one).
	RequireTokens bool
	// ProxyAuthenticator, when set, checks the credentials proxies present
	// on their streams for the Dataplanes it covers, which then need no
	// token (credentials.go); nil in universal mode.
	ProxyAuthenticator ProxyAuthenticator
	// Debounce gathers changes for at most this long before rebuilding.
	Debounce time.Duration
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Server serves xDS (ADS, state of the world and incremental) to the
// zone's proxies: Envoy sidecars and proxyless gRPC clients. A proxy's
// node.id is "<mesh>.<dataplane name>"; an unknown one is refused.
type Server struct {
	cfg Config
	// versions start with the server's start time: unique across
	// restarts of the zone.
	versionPrefix string
	changes       chan struct{}
	bound         atomic.Value // net.Addr
	tokenKey      []byte

	mu sync.Mutex
	// dps mirrors the zone's Dataplanes while proxies are connected (a
	// zone with no proxies does not keep them in memory); nil otherwise.
	dps     *store.Cache
	dpsStop context.CancelFunc
	runCtx  context.Context
	meshes  map[string]*meshConfig // meshes with connected proxies
	ingress *ingressCaches         // while the zone's ingress is connected
	nodes   map[string]*node       // by node id
	streams map[streamKey]string   // stream → the node id it was admitted as
	// openCtx holds open streams' contexts while there is a
	// ProxyAuthenticator (credentials.go).
	openCtx map[streamKey]context.Context

	connected prometheus.Gauge
	nacks     *prometheus.CounterVec
	refused   *prometheus.CounterVec
	builds    prometheus.Histogram
}

// streamKey names a stream. go-control-plane numbers state-of-the-world
// and incremental streams each from 1: stream 1 of one kind is not stream
// 1 of the other, and must not be taken for the node it was admitted as.
type streamKey struct {
	delta bool
	id    int64
}

type node struct {
	id      string
	mesh    string
	name    string
	kind    Kind
	gateway bool
	// lds holds a sidecar's listeners: the mesh's outbounds and its own
	// inbounds (gateways and gRPC clients share their mesh's listeners).
	lds       *cachev3.LinearCache
	inbounds  map[string]types.Resource
	dpVersion string
	failing   string // the last update error, logged once
	streams   int
	sent      map[string]string // type URL → version
	acked     map[string]string
	nacked    map[string]string // type URL → the proxy's error
	connected time.Time
}

// NewServer prepares a server; Run serves.
func NewServer(cfg Config) *Server {
	if cfg.Debounce <= 0 {
		cfg.Debounce = 20 * time.Millisecond
	}
	s := &Server{
		cfg:           cfg,
		versionPrefix: fmt.Sprintf("%x-", time.Now().UnixNano()),
		changes:       make(chan struct{}, 1),
		meshes:        map[string]*meshConfig{},
		nodes:         map[string]*node{},
		streams:       map[streamKey]string{},
		openCtx:       map[streamKey]context.Context{},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_xds_connected_proxies", Help: "Proxies connected to the zone's xDS server.",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_xds_nacks_total", Help: "Configurations proxies refused, by xDS type.",
		}, []string{"type"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_xds_refused_total", Help: "Proxy streams refused, by gRPC status: NotFound (unknown Dataplane), InvalidArgument (malformed node.id), Unauthenticated (missing or wrong token or credential), PermissionDenied (a credential of another workload, or a request naming another node than the stream was admitted as), Unavailable.",
		}, []string{"code"}),
		builds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "atoll_xds_build_seconds", Help: "Time to build one proxy's configuration.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
	}
	s.tokenKey = cfg.TokenKey
	if len(s.tokenKey) == 0 {
		s.tokenKey = make([]byte, 32)
		rand.Read(s.tokenKey)
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(s.connected, s.nacks, s.refused, s.builds)
	}
	cfg.Cache.Signal(s.changes, resource.MeshType, resource.ZoneIngressType, resource.ServiceEndpointsType)
	return s
}

// Changed tells the server that its inputs changed (VIPs, for one).
func (s *Server) Changed() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// Addr is the bound address once Run listens.
func (s *Server) Addr() net.Addr {
	a, _ := s.bound.Load().(net.Addr)
	return a
}

// followDataplanes starts mirroring the zone's Dataplanes, once a proxy
// connects. Callers hold mu.
func (s *Server) followDataplanes() error {
	if s.dps != nil {
		return nil
	}
	ctx := s.runCtx
	if ctx == nil {
		return errors.New("the server is not running")
	}
	c := store.NewCache(s.cfg.Store, resource.DataplaneType)
	c.Signal(s.changes, resource.DataplaneType)
	ctx, cancel := context.WithCancel(ctx)
	if err := c.Start(ctx); err != nil {
		cancel()
		return err
	}
	s.dps, s.dpsStop = c, cancel
	return nil
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("xds.addr: %w", err)
		}
	}
	s.bound.Store(ln.Addr())
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if s.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
	}
	srv := grpc.NewServer(opts...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(ctx, router{s}, s.callbacks()))
	s.cfg.Log.Info("xds server listening", "addr", ln.Addr().String(), "tls", s.cfg.TLS != nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	th := throttle.New(s.cfg.Debounce)
	for {
		select {
		case <-ctx.Done():
			stopped := make(chan struct{})
			go func() { srv.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second):
				srv.Stop() // proxies keep their streams open
			}
			return nil
		case err := <-errc:
			return fmt.Errorf("xds server: %w", err)
		case <-s.changes:
			if !th.Event() {
				continue
			}
		case <-th.C():
		}
		th.Acted()
		s.rebuildAll(ctx)
	}
}

func (s *Server) rebuildAll(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, m := range s.meshes {
		if err := s.updateMesh(m); err != nil {
			s.cfg.Log.Warn("updating a mesh's proxy configuration failed; proxies keep the previous one", "mesh", name, "error", err)
		}
	}
	if s.ingress != nil {
		if err := s.updateIngress(); err != nil {
			s.cfg.Log.Warn("updating the ingress's configuration failed; it keeps the previous one", "error", err)
		}
	}
	for _, n := range s.nodes {
		err := s.updateSidecar(n)
		switch {
		case err != nil && err.Error() != n.failing:
			// Once per cause, not on every change.
			s.cfg.Log.Warn("updating a sidecar's listeners failed; it keeps the previous ones", "node", n.id, "error", err)
			n.failing = err.Error()
		case err == nil && n.failing != "":
			s.cfg.Log.Info("a sidecar's listeners are updated again", "node", n.id)
			n.failing = ""
		}
	}
}

// updateMesh brings a mesh's configuration up to date. Callers hold mu.
func (s *Server) updateMesh(m *meshConfig) error {
	start := time.Now()
	mesh, err := s.cfg.Cache.Get(resource.Key{Type: resource.MeshType, Name: m.name})
	if err != nil {
		return fmt.Errorf("mesh %s is gone: %w", m.name, err)
	}
	in := Input{
		Zone: s.cfg.Zone, Domain: s.cfg.Domain, MeshName: m.name, Mesh: mesh.Spec.(*v1alpha1.Mesh),
		Dataplanes: s.dps.List(resource.DataplaneType, m.name),
		Ingresses:  s.cfg.Cache.List(resource.ZoneIngressType, ""),
		Endpoints:  s.cfg.Cache.List(resource.ServiceEndpointsType, m.name),
	}
	in.VIPs, in.ServiceAddresses = s.outboundAddresses(m.name)
	m.update(in)
	s.builds.Observe(time.Since(start).Seconds())
	return nil
}

// outboundAddresses are the VIPs and own addresses of mesh's services.
func (s *Server) outboundAddresses(mesh string) (vips map[string]netip.Addr, addrs map[string][]netip.AddrPort) {
	if s.cfg.VIPs != nil {
		vips = s.cfg.VIPs(mesh)
	}
	if s.cfg.ServiceAddresses != nil {
		addrs = s.cfg.ServiceAddresses(mesh)
	}
	return vips, addrs
}

// updateSidecar keeps a sidecar's listeners: its mesh's outbounds (the
// same objects, so unchanged ones are not re-sent) and its inbounds.
// Gateways and gRPC clients have none of their own. Callers hold mu.
func (s *Server) updateSidecar(n *node) error {
	if n.lds == nil {
		return nil
	}
	dp, err := s.dps.Get(resource.Key{Type: resource.DataplaneType, Mesh: n.mesh, Name: n.name})
	if err != nil {
		return fmt.Errorf("its Dataplane is gone: %w", err)
	}
	if dp.Meta.Version != n.dpVersion || n.inbounds == nil {
		res, err := Generate(Input{}, Proxy{Kind: Envoy, Dataplane: dp})
		if err != nil {
			return err
		}
		n.inbounds = map[string]types.Resource{}
		for _, l := range res[typeLDS] {
			if name := cachev3.GetResourceName(l); strings.HasPrefix(name, "inbound:") {
				n.inbounds[name] = l
			}
		}
		n.dpVersion = dp.Meta.Version
	}
	want := s.meshes[n.mesh].gateway.GetResources()
	for name, l := range n.inbounds {
		want[name] = l
	}
	have := n.lds.GetResources()
	upd, del := map[string]types.Resource{}, []string(nil)
	for name, l := range want {
		if have[name] != l {
			upd[name] = l
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			del = append(del, name)
		}
	}
	if len(upd)+len(del) > 0 {
		return n.lds.UpdateResources(upd, del)
	}
	return nil
}

// admit admits a stream on its first request (admission.go) and builds
// the node's configuration when it is the node's first stream. Callers
// hold mu.
// vouched is true when the stream's credential was checked
// (authenticate): the node's token is then not required.
func (s *Server) admit(ctx context.Context, streamID streamKey, cn *corev3.Node, vouched bool) (*node, error) {
	a := s.admission()
	if vouched {
		a.requireTokens = false
	}
	who, err := a.admit(cn)
	if err != nil {
		return nil, err
	}
	if who.ingress {
		return s.admitIngress(ctx, streamID, who.id)
	}
	id, mesh, name := who.id, who.mesh, who.name
	if err := s.followDataplanes(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "node.id %q: reading this zone's Dataplanes failed: %v", id, err)
	}
	dp, err := s.dps.Get(resource.Key{Type: resource.DataplaneType, Mesh: mesh, Name: name})
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "node.id %q: zone %s has no Dataplane %q in mesh %q: register the Dataplane with this zone first", quoteID(id), s.cfg.Zone, quoteID(name), quoteID(mesh))
	}
	if auth := s.cfg.ProxyAuthenticator; !vouched && auth != nil && auth.Covers(dp) {
		// The Dataplane appeared after authenticate looked for it: its
		// proxy's credential was not checked. The proxy retries, and is
		// checked then.
		return nil, status.Errorf(codes.Unavailable, "node.id %q: its Dataplane appeared while the stream opened, before its credential was checked: reconnect", quoteID(id))
	}
	n := s.nodes[id]
	if n == nil {
		kind := Envoy
		if strings.HasPrefix(strings.ToLower(cn.GetUserAgentName()), "grpc") {
			kind = Proxyless
		}
		n = &node{id: id, mesh: mesh, name: name, kind: kind, connected: time.Now(),
			gateway: dp.Spec.(*v1alpha1.Dataplane).GetNetworking().GetGateway() != nil,
			sent:    map[string]string{}, acked: map[string]string{}, nacked: map[string]string{}}
		if s.meshes[mesh] == nil {
			m := newMeshConfig(s.cfg.Zone, s.cfg.Domain, mesh, s.versionPrefix, quietLogger{s.cfg.Log})
			if err := s.updateMesh(m); err != nil {
				return nil, status.Errorf(codes.Unavailable, "node.id %q: building its configuration failed: %v", id, err)
			}
			s.meshes[mesh] = m
		}
		vips, addrs := s.outboundAddresses(mesh)
		s.meshes[mesh].serve(kind, vips, addrs)
		if kind == Envoy && !n.gateway {
			n.lds = cachev3.NewLinearCache(typeLDS, cachev3.WithVersionPrefix(s.versionPrefix), cachev3.WithLogger(quietLogger{s.cfg.Log}))
			if err := s.updateSidecar(n); err != nil {
				return nil, status.Errorf(codes.Unavailable, "node.id %q: building its configuration failed: %v", id, err)
			}
		}
		s.nodes[id] = n
		s.connected.Inc()
	}
	n.streams++
	s.streams[streamID] = id
	return n, nil
}

func (s *Server) request(ctx context.Context, streamID streamKey, cn *corev3.Node, typeURL, version string, nonce string, errDetail *status.Status) error {
	vouched, err := s.authenticate(streamID, cn)
	if err != nil {
		level := slog.LevelInfo
		if status.Code(err) == codes.Unavailable {
			level = slog.LevelWarn // the zone could not check it: its own problem
		}
		s.cfg.Log.Log(context.Background(), level, "refused a proxy's credential", "node", quoteID(cn.GetId()), "error", err)
		s.refused.WithLabelValues(status.Code(err).String()).Inc()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n *node
	if admitted, ok := s.streams[streamID]; ok {
		// Every request on a stream is the admitted node's, or ends it.
		if err := s.admission().check(admitted, cn); err != nil {
			s.cfg.Log.Warn("refused a later request on an admitted stream; the stream ends", "node", admitted, "named", quoteID(cn.GetId()), "error", err)
			s.refused.WithLabelValues(status.Code(err).String()).Inc()
			return err
		}
		if n = s.nodes[admitted]; n == nil {
			// closed drops a stream before its node; should that ever
			// change, a request is refused rather than the zone crashing.
			return status.Errorf(codes.Unavailable, "node.id %q is no longer connected: reconnect", admitted)
		}
	} else {
		if n, err = s.admit(ctx, streamID, cn, vouched); err != nil {
			s.cfg.Log.Info("refused a proxy", "node", quoteID(cn.GetId()), "error", err)
			s.refused.WithLabelValues(status.Code(err).String()).Inc()
			return err
		}
	}
	short := typeURL[strings.LastIndexByte(typeURL, '.')+1:]
	switch {
	case errDetail != nil:
		// Counted and kept; the same configuration is not sent again, only
		// the next change.
		n.nacked[short] = errDetail.Message()
		s.nacks.WithLabelValues(short).Inc()
		s.cfg.Log.Warn("a proxy refused its configuration", "node", n.id, "type", short, "version", version, "error", errDetail.Message())
	case nonce != "":
		n.acked[short] = cmp.Or(version, n.sent[short])
		delete(n.nacked, short)
	}
	return nil
}

func (s *Server) responded(streamID streamKey, typeURL, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[s.streams[streamID]]; n != nil {
		n.sent[typeURL[strings.LastIndexByte(typeURL, '.')+1:]] = version
	}
}

// sentVersion is the version of typeURL last sent to a node.
func (s *Server) sentVersion(nodeID, typeURL string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[nodeID]; n != nil {
		return n.sent[typeURL[strings.LastIndexByte(typeURL, '.')+1:]]
	}
	return ""
}

func (s *Server) closed(streamID streamKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.openCtx, streamID)
	id, ok := s.streams[streamID]
	if !ok {
		return
	}
	delete(s.streams, streamID)
	if n := s.nodes[id]; n != nil {
		if n.streams--; n.streams <= 0 {
			delete(s.nodes, id)
			s.connected.Dec()
			if len(s.nodes) == 0 && s.dpsStop != nil {
				s.dpsStop()
				s.dps, s.dpsStop = nil, nil
			}
			if n.kind == IngressProxy {
				s.ingress = nil
				return
			}
			for _, other := range s.nodes {
				if other.mesh == n.mesh {
					return
				}
			}
			delete(s.meshes, n.mesh) // rebuilt when a proxy of the mesh connects
		}
	}
}

func (s *Server) callbacks() serverv3.Callbacks {
	errStatus := func(d interface {
		GetMessage() string
		GetCode() int32
	}) *status.Status {
		return status.New(codes.Code(d.GetCode()), d.GetMessage())
	}
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.opened(ctx, streamKey{id: id})
			return nil
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.opened(ctx, streamKey{delta: true, id: id})
			return nil
		},
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			var nack *status.Status
			if d := req.GetErrorDetail(); d != nil {
				nack = errStatus(d)
			}
			return s.request(context.Background(), streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetVersionInfo(), req.GetResponseNonce(), nack)
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.responded(streamKey{id: id}, resp.GetTypeUrl(), resp.GetVersionInfo())
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) { s.closed(streamKey{id: id}) },
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			var nack *status.Status
			if d := req.GetErrorDetail(); d != nil {
				nack = errStatus(d)
			}
			return s.request(context.Background(), streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), "", req.GetResponseNonce(), nack)
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.responded(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetSystemVersionInfo())
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.closed(streamKey{delta: true, id: id}) },
	}
}

// quietLogger sends go-control-plane's logging to slog at debug level,
// warnings and errors at their own.
type quietLogger struct{ log *slog.Logger }

// Debugf formats only when debug logging is on: go-control-plane logs
// whole subscriptions at debug level on every watch.
func (l quietLogger) Debugf(f string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(f, a...))
	}
}
func (l quietLogger) Infof(f string, a ...any)  { l.Debugf(f, a...) }
func (l quietLogger) Warnf(f string, a ...any)  { l.log.Warn(fmt.Sprintf(f, a...)) }
func (l quietLogger) Errorf(f string, a ...any) { l.log.Error(fmt.Sprintf(f, a...)) }
