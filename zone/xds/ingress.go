package xds

import (
	"context"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// IngressConfig configures the zone ingress's proxy.
type IngressConfig struct {
	Address         string
	Port            uint32
	CertPEM, KeyPEM []byte
}

// admitIngress admits the zone's ingress proxy, whose node.id is the
// zone's name, once admission has checked its token. Callers hold mu.
func (s *Server) admitIngress(ctx context.Context, streamID streamKey, id string) (*node, error) {
	if err := s.followDataplanes(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "node.id %q: reading this zone's Dataplanes failed: %v", id, err)
	}
	n := s.nodes[id]
	if n == nil {
		opts := func() []cachev3.LinearCacheOption {
			return []cachev3.LinearCacheOption{cachev3.WithVersionPrefix(s.versionPrefix), cachev3.WithLogger(quietLogger{s.cfg.Log})}
		}
		s.ingress = &ingressCaches{lds: cachev3.NewLinearCache(typeLDS, opts()...),
			cds: cachev3.NewLinearCache(typeCDS, opts()...), eds: cachev3.NewLinearCache(typeEDS, opts()...)}
		if err := s.updateIngress(); err != nil {
			s.ingress = nil
			return nil, status.Errorf(codes.Unavailable, "node.id %q: building the ingress configuration failed: %v", id, err)
		}
		n = &node{id: id, kind: IngressProxy, connected: time.Now(),
			sent: map[string]string{}, acked: map[string]string{}, nacked: map[string]string{}}
		s.nodes[id] = n
		s.connected.Inc()
	}
	n.streams++
	s.streams[streamID] = id
	return n, nil
}

// ingressCaches hold the zone ingress's configuration.
type ingressCaches struct {
	lds, cds, eds *cachev3.LinearCache
}

// updateIngress regenerates the ingress's configuration and sends what
// changed. Callers hold mu.
func (s *Server) updateIngress() error {
	res, err := GenerateIngress(IngressInput{
		Zone: s.cfg.Zone, Address: s.cfg.Ingress.Address, Port: s.cfg.Ingress.Port,
		Dataplanes: s.dps.List(resource.DataplaneType, ""),
		CertPEM:    s.cfg.Ingress.CertPEM, KeyPEM: s.cfg.Ingress.KeyPEM,
	})
	if err != nil {
		return err
	}
	for typ, c := range map[string]*cachev3.LinearCache{typeLDS: s.ingress.lds, typeCDS: s.ingress.cds, typeEDS: s.ingress.eds} {
		have := c.GetResources()
		upd, del := map[string]types.Resource{}, []string(nil)
		want := map[string]bool{}
		for _, r := range res[typ] {
			name := cachev3.GetResourceName(r)
			want[name] = true
			if !proto.Equal(have[name], r) {
				upd[name] = r
			}
		}
		for name := range have {
			if !want[name] {
				del = append(del, name)
			}
		}
		if len(upd)+len(del) > 0 {
			if err := c.UpdateResources(upd, del); err != nil {
				return err
			}
		}
	}
	return nil
}
