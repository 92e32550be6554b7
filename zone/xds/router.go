package xds

import (
	"context"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// router sends each watch to the cache that holds the proxy's resources:
// its mesh's endpoints and clusters; its mesh's gRPC or gateway listeners,
// or a sidecar's own.
type router struct{ s *Server }

func (r router) cache(node *corev3.Node, typeURL string) (cachev3.Cache, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	n := r.s.nodes[node.GetId()]
	if n == nil {
		return nil, status.Errorf(codes.NotFound, "node.id %q is not connected", node.GetId())
	}
	if n.kind == IngressProxy {
		switch {
		case r.s.ingress == nil:
			return nil, status.Errorf(codes.Unavailable, "the ingress has no configuration")
		case typeURL == typeLDS:
			return r.s.ingress.lds, nil
		case typeURL == typeCDS:
			return r.s.ingress.cds, nil
		case typeURL == typeEDS:
			return r.s.ingress.eds, nil
		}
		return nil, status.Errorf(codes.InvalidArgument, "%s is not served: this server sends listeners, clusters and endpoints", typeURL)
	}
	m := r.s.meshes[n.mesh]
	switch {
	case m == nil:
		return nil, status.Errorf(codes.Unavailable, "mesh %q has no configuration", n.mesh)
	case typeURL == typeEDS:
		return m.eds, nil
	case typeURL == typeCDS && n.kind == Proxyless:
		return m.cdsProxyless, nil
	case typeURL == typeCDS:
		return m.cdsEnvoy, nil
	case typeURL == typeLDS && n.kind == Proxyless:
		return m.proxyless, nil
	case typeURL == typeLDS && n.lds != nil:
		return n.lds, nil
	case typeURL == typeLDS:
		return m.gateway, nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "%s is not served: this server sends listeners, clusters and endpoints", typeURL)
}

func (r router) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	c, err := r.cache(req.GetNode(), req.GetTypeUrl())
	if err != nil {
		return nil, err
	}
	if req.GetErrorDetail() != nil && req.GetVersionInfo() == "" {
		// A NACK of the first configuration names no accepted version, which
		// the cache takes for a proxy that has nothing and answers at once
		// with the same configuration: a loop. Tell it the proxy has what
		// it refused, so only the next change is sent.
		if sent := r.s.sentVersion(req.GetNode().GetId(), req.GetTypeUrl()); sent != "" {
			req = proto.Clone(req).(*cachev3.Request)
			req.VersionInfo = sent
		}
	}
	return c.CreateWatch(req, sub, ch)
}

func (r router) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	c, err := r.cache(req.GetNode(), req.GetTypeUrl())
	if err != nil {
		return nil, err
	}
	return c.CreateDeltaWatch(req, sub, ch)
}

func (r router) Fetch(context.Context, *cachev3.Request) (cachev3.Response, error) {
	return nil, status.Error(codes.Unimplemented, "fetch is not served: use ADS")
}
