package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/throttle"
)

// Config configures a Server.
type Config struct {
	// Addr is where proxies connect (gRPC, ADS); port 0 picks a free one.
	Addr   string
	Zone   string
	Domain string
	// Cache holds the zone's Meshes, Dataplanes, ZoneIngresses and
	// ServiceEndpoints.
	Cache *store.Cache
	// VIPs returns a mesh's service VIPs.
	VIPs func(mesh string) map[string]netip.Addr
	// Debounce gathers changes for at most this long before rebuilding.
	Debounce time.Duration
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Server serves xDS (ADS, state of the world and incremental) to the
// zone's proxies: Envoy sidecars and proxyless gRPC clients. A proxy's
// node.id is "<mesh>.<dataplane name>"; an unknown one is refused.
type Server struct {
	cfg       Config
	snapshots cachev3.SnapshotCache
	// versions are "<start>.<n>": unique across restarts of the zone.
	versionPrefix string
	version       atomic.Uint64
	changes       chan struct{}
	bound         atomic.Value // net.Addr

	mu      sync.Mutex
	nodes   map[string]*node // by node id
	streams map[int64]string // stream → node id

	connected prometheus.Gauge
	nacks     *prometheus.CounterVec
	builds    prometheus.Histogram
}

type node struct {
	id        string
	mesh      string
	name      string
	kind      Kind
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
		snapshots:     cachev3.NewSnapshotCache(true, cachev3.IDHash{}, quietLogger{cfg.Log}),
		versionPrefix: fmt.Sprintf("%x", time.Now().UnixNano()),
		changes:       make(chan struct{}, 1),
		nodes:         map[string]*node{},
		streams:       map[int64]string{},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_xds_connected_proxies", Help: "Proxies connected to the zone's xDS server.",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_xds_nacks_total", Help: "Configurations proxies refused, by xDS type.",
		}, []string{"type"}),
		builds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "atoll_xds_build_seconds", Help: "Time to build one proxy's configuration.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(s.connected, s.nacks, s.builds)
	}
	cfg.Cache.Subscribe(func(t resource.Type) {
		switch t {
		case resource.MeshType, resource.DataplaneType, resource.ZoneIngressType, resource.ServiceEndpointsType:
			s.Changed()
		}
	})
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

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("xdsAddr: %w", err)
	}
	s.bound.Store(ln.Addr())
	srv := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(ctx, s.snapshots, s.callbacks()))
	s.cfg.Log.Info("xds server listening", "addr", ln.Addr().String())
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
	for _, n := range s.nodes {
		if err := s.build(ctx, n); err != nil {
			s.cfg.Log.Warn("building a proxy's configuration failed; it keeps the previous one", "node", n.id, "error", err)
		}
	}
}

// build generates n's configuration and hands it to the snapshot cache.
// Callers hold mu.
func (s *Server) build(ctx context.Context, n *node) error {
	start := time.Now()
	dp, err := s.cfg.Cache.Get(resource.Key{Type: resource.DataplaneType, Mesh: n.mesh, Name: n.name})
	if err != nil {
		return fmt.Errorf("its Dataplane is gone: %w", err)
	}
	mesh, err := s.cfg.Cache.Get(resource.Key{Type: resource.MeshType, Name: n.mesh})
	if err != nil {
		return fmt.Errorf("its mesh is gone: %w", err)
	}
	in := Input{
		Zone: s.cfg.Zone, Domain: s.cfg.Domain, MeshName: n.mesh, Mesh: mesh.Spec.(*v1alpha1.Mesh),
		Dataplanes: s.cfg.Cache.List(resource.DataplaneType, n.mesh),
		Ingresses:  s.cfg.Cache.List(resource.ZoneIngressType, ""),
		Endpoints:  s.cfg.Cache.List(resource.ServiceEndpointsType, n.mesh),
	}
	if s.cfg.VIPs != nil {
		in.VIPs = s.cfg.VIPs(n.mesh)
	}
	res, err := Generate(in, Proxy{Kind: n.kind, Dataplane: dp})
	if err != nil {
		return err
	}
	version := fmt.Sprintf("%s.%d", s.versionPrefix, s.version.Add(1))
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		return err
	}
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("inconsistent configuration: %w", err)
	}
	if err := s.snapshots.SetSnapshot(ctx, n.id, snap); err != nil {
		return err
	}
	s.builds.Observe(time.Since(start).Seconds())
	return nil
}

// admit checks a proxy's node on its first request and builds its
// configuration when it is the node's first stream. Callers hold mu.
func (s *Server) admit(ctx context.Context, streamID int64, cn *corev3.Node) (*node, error) {
	id := cn.GetId()
	mesh, name, ok := strings.Cut(id, ".")
	if !ok || mesh == "" || name == "" {
		return nil, status.Errorf(codes.InvalidArgument, "node.id %q: use <mesh>.<dataplane name>, e.g. default.kong", id)
	}
	if _, err := s.cfg.Cache.Get(resource.Key{Type: resource.DataplaneType, Mesh: mesh, Name: name}); err != nil {
		return nil, status.Errorf(codes.NotFound, "node.id %q: zone %s has no Dataplane %q in mesh %q: register the Dataplane with this zone first", id, s.cfg.Zone, name, mesh)
	}
	n := s.nodes[id]
	if n == nil {
		kind := Envoy
		if strings.HasPrefix(strings.ToLower(cn.GetUserAgentName()), "grpc") {
			kind = Proxyless
		}
		n = &node{id: id, mesh: mesh, name: name, kind: kind, connected: time.Now(),
			sent: map[string]string{}, acked: map[string]string{}, nacked: map[string]string{}}
		if err := s.build(ctx, n); err != nil {
			return nil, status.Errorf(codes.Unavailable, "node.id %q: building its configuration failed: %v", id, err)
		}
		s.nodes[id] = n
		s.connected.Inc()
	}
	n.streams++
	s.streams[streamID] = id
	return n, nil
}

func (s *Server) request(ctx context.Context, streamID int64, cn *corev3.Node, typeURL, version string, nonce string, errDetail *status.Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[s.streams[streamID]]
	if n == nil {
		var err error
		if n, err = s.admit(ctx, streamID, cn); err != nil {
			s.cfg.Log.Info("refused a proxy", "node", cn.GetId(), "error", err)
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
		n.acked[short] = cmpOr(version, n.sent[short])
		delete(n.nacked, short)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Server) responded(streamID int64, typeURL, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[s.streams[streamID]]; n != nil {
		n.sent[typeURL[strings.LastIndexByte(typeURL, '.')+1:]] = version
	}
}

func (s *Server) closed(streamID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.streams[streamID]
	if !ok {
		return
	}
	delete(s.streams, streamID)
	if n := s.nodes[id]; n != nil {
		if n.streams--; n.streams <= 0 {
			delete(s.nodes, id)
			s.snapshots.ClearSnapshot(id)
			s.connected.Dec()
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
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			var nack *status.Status
			if d := req.GetErrorDetail(); d != nil {
				nack = errStatus(d)
			}
			return s.request(context.Background(), id, req.GetNode(), req.GetTypeUrl(), req.GetVersionInfo(), req.GetResponseNonce(), nack)
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.responded(id, resp.GetTypeUrl(), resp.GetVersionInfo())
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) { s.closed(id) },
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			var nack *status.Status
			if d := req.GetErrorDetail(); d != nil {
				nack = errStatus(d)
			}
			return s.request(context.Background(), id, req.GetNode(), req.GetTypeUrl(), "", req.GetResponseNonce(), nack)
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.responded(id, resp.GetTypeUrl(), resp.GetSystemVersionInfo())
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.closed(id) },
	}
}

// ProxyStatus is a connected proxy as GET .../dataplanes/{name}/xds shows it.
type ProxyStatus struct {
	Node      string            `json:"node"`
	Kind      string            `json:"kind"`
	Streams   int               `json:"streams"`
	Connected time.Time         `json:"connected"`
	Sent      map[string]string `json:"sent"`
	Acked     map[string]string `json:"acked"`
	Nacked    map[string]string `json:"nacked,omitempty"`
}

// Handler serves GET /meshes/{mesh}/dataplanes/{name}/xds: the proxy's
// connection and the versions it was sent and ACKed.
func (s *Server) Handler(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("mesh") + "." + r.PathValue("name")
	s.mu.Lock()
	n := s.nodes[id]
	var st ProxyStatus
	if n != nil {
		kind := "envoy"
		if n.kind == Proxyless {
			kind = "proxyless-grpc"
		}
		st = ProxyStatus{Node: id, Kind: kind, Streams: n.streams, Connected: n.connected.UTC(),
			Sent: clone(n.sent), Acked: clone(n.acked), Nacked: clone(n.nacked)}
	}
	s.mu.Unlock()
	if n == nil {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no proxy with node.id " + id + " is connected to this zone"})
		return
	}
	apiserver.WriteJSON(w, http.StatusOK, st)
}

// Connected lists the node ids of connected proxies, sorted.
func (s *Server) Connected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.nodes))
	for id := range s.nodes {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// quietLogger sends go-control-plane's logging to slog at debug level,
// warnings and errors at their own.
type quietLogger struct{ log *slog.Logger }

func (l quietLogger) Debugf(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l quietLogger) Infof(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l quietLogger) Warnf(f string, a ...any)  { l.log.Warn(fmt.Sprintf(f, a...)) }
func (l quietLogger) Errorf(f string, a ...any) { l.log.Error(fmt.Sprintf(f, a...)) }
