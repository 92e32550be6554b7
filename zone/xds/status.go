package xds

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// ProxyStatus is a connected proxy as GET .../dataplanes/{name}/xds shows it.
type ProxyStatus struct {
	Node string `json:"node"`
	// Mesh and Dataplane name a Dataplane's proxy (empty for the ingress).
	Mesh      string    `json:"mesh,omitempty"`
	Dataplane string    `json:"dataplane,omitempty"`
	Kind      string    `json:"kind"`
	Streams   int       `json:"streams"`
	Connected time.Time `json:"connected"`
	// InSync: the proxy has ACKed the last version sent of every type.
	InSync bool              `json:"inSync"`
	Sent   map[string]string `json:"sent"`
	Acked  map[string]string `json:"acked"`
	Nacked map[string]string `json:"nacked,omitempty"`
}

// status is n as shown. Callers hold s.mu.
func (n *node) status() ProxyStatus {
	kind := "envoy"
	switch n.kind {
	case Proxyless:
		kind = "proxyless-grpc"
	case IngressProxy:
		kind = "ingress"
	}
	inSync := len(n.sent) > 0
	for t, v := range n.sent {
		if n.acked[t] != v {
			inSync = false
		}
	}
	return ProxyStatus{Node: n.id, Mesh: n.mesh, Dataplane: n.name, Kind: kind, Streams: n.streams, Connected: n.connected.UTC(),
		InSync: inSync, Sent: clone(n.sent), Acked: clone(n.acked), Nacked: clone(n.nacked)}
}

// ListHandler serves GET /proxies[?mesh=M]: every proxy connected to this
// zone, by node.id.
func (s *Server) ListHandler(w http.ResponseWriter, r *http.Request) {
	mesh := r.URL.Query().Get("mesh")
	s.mu.Lock()
	items := make([]ProxyStatus, 0, len(s.nodes))
	for _, n := range s.nodes {
		if mesh == "" || n.mesh == mesh {
			items = append(items, n.status())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b ProxyStatus) int { return strings.Compare(a.Node, b.Node) })
	apiserver.WriteJSON(w, http.StatusOK, map[string]any{"total": len(items), "items": items})
}

// Handler serves GET /meshes/{mesh}/dataplanes/{name}/xds: the proxy's
// connection and the versions it was sent and ACKed.
func (s *Server) Handler(w http.ResponseWriter, r *http.Request) {
	s.writeStatus(w, r.PathValue("mesh")+"."+r.PathValue("name"))
}

// IngressHandler serves GET /zoneingresses/{name}/xds: the same for the
// zone's ingress proxy (node.id = the zone's name).
func (s *Server) IngressHandler(w http.ResponseWriter, r *http.Request) {
	s.writeStatus(w, r.PathValue("name"))
}

func (s *Server) writeStatus(w http.ResponseWriter, id string) {
	s.mu.Lock()
	n := s.nodes[id]
	var st ProxyStatus
	if n != nil {
		st = n.status()
	}
	s.mu.Unlock()
	if n == nil {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no proxy with node.id " + id + " is connected to this zone"})
		return
	}
	apiserver.WriteJSON(w, http.StatusOK, st)
}

// ConfigHandler serves GET /meshes/{mesh}/dataplanes/{name}/xds/config:
// the configuration the Dataplane's proxy gets, as JSON by xDS type and
// resource name, built from the zone's current state (the same as what is
// served; a test holds the two equal). ?kind=envoy|proxyless chooses the
// kind; by default that of the connected proxy, else envoy.
func (s *Server) ConfigHandler(w http.ResponseWriter, r *http.Request) {
	mesh, name := r.PathValue("mesh"), r.PathValue("name")
	// The mirrored Dataplanes while proxies are connected, else the store.
	s.mu.Lock()
	dps := s.dps
	s.mu.Unlock()
	key := resource.Key{Type: resource.DataplaneType, Mesh: mesh, Name: name}
	var dp *resource.Resource
	var all []*resource.Resource
	var err error
	if dps != nil {
		if dp, err = dps.Get(key); err == nil {
			all = dps.List(resource.DataplaneType, mesh)
		}
	} else if dp, err = s.cfg.Store.Get(r.Context(), key); err == nil {
		if all, err = s.cfg.Store.List(r.Context(), resource.DataplaneType, mesh); err != nil {
			apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
	}
	if err != nil {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("zone %s has no Dataplane %q in mesh %q", s.cfg.Zone, name, mesh)})
		return
	}
	m, err := s.cfg.Cache.Get(resource.Key{Type: resource.MeshType, Name: mesh})
	if err != nil {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "mesh " + mesh + " does not exist"})
		return
	}
	kind := Envoy
	s.mu.Lock()
	if n := s.nodes[mesh+"."+name]; n != nil {
		kind = n.kind
	}
	s.mu.Unlock()
	switch r.URL.Query().Get("kind") {
	case "":
	case "envoy":
		kind = Envoy
	case "proxyless":
		kind = Proxyless
	default:
		apiserver.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "kind: use envoy or proxyless"})
		return
	}
	in := Input{
		Zone: s.cfg.Zone, Domain: s.cfg.Domain, MeshName: mesh, Mesh: m.Spec.(*v1alpha1.Mesh),
		Dataplanes: all,
		Ingresses:  s.cfg.Cache.List(resource.ZoneIngressType, ""),
		Endpoints:  s.cfg.Cache.List(resource.ServiceEndpointsType, mesh),
	}
	in.VIPs, in.ServiceAddresses = s.outboundAddresses(mesh)
	res, err := Generate(in, Proxy{Kind: kind, Dataplane: dp})
	if err == nil {
		var body []byte
		if body, err = Render(res); err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
			return
		}
	}
	apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
}

// Render is a configuration as indented JSON: xDS type (short name) →
// resource name → resource, keys sorted.
func Render(res Resources) ([]byte, error) {
	out := map[string]map[string]json.RawMessage{}
	for typ, rs := range res {
		short := typ[strings.LastIndexByte(typ, '/')+1:]
		out[short] = map[string]json.RawMessage{}
		for _, r := range rs {
			b, err := protojson.Marshal(expand(r))
			if err != nil {
				return nil, err
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, b); err != nil {
				return nil, err
			}
			out[short][cachev3.GetResourceName(r)] = compact.Bytes()
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
