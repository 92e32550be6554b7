package xds

import (
	"context"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// Proxy credentials: a proof of identity a proxy presents on its stream,
// checked by a ProxyAuthenticator, in place of the zone's HMAC token.
//
// In Kubernetes mode a sidecar presents its pod's projected ServiceAccount
// token as gRPC metadata "authorization: Bearer <token>" on the stream; the
// authenticator (zone/kubernetes) checks it with a TokenReview and that
// the token's pod is the pod the Dataplane was made from. The credential
// is the stream's (gRPC metadata is sent once, when the stream opens), so
// it is checked once, on the stream's first request, before the node is
// admitted; later requests on the stream are held to the admitted node.id
// as before (admission.go). A stream outlives its token's expiry, as a TLS
// connection outlives its certificate's: the sidecar's next stream
// presents the refreshed token.
//
// Which Dataplanes need one is the authenticator's word (Covers): the
// others — Dataplanes registered through the zone's API — and the zone's
// ingress keep the zone's HMAC tokens, under the same rules as in
// universal mode.

// AuthorizationMetadataKey is the gRPC metadata key of a proxy's
// credential: "Bearer <token>".
const AuthorizationMetadataKey = "authorization"

// ProxyAuthenticator checks the credentials of Dataplanes' proxies.
type ProxyAuthenticator interface {
	// Covers reports whether dp's proxy must present a credential to this
	// authenticator; the proxies of other Dataplanes present the zone's
	// token instead.
	Covers(dp *resource.Resource) bool
	// Authenticate checks that bearer (the token of the stream's
	// "authorization: Bearer <token>" metadata) is a credential of dp's
	// proxy. Its errors are gRPC statuses: Unauthenticated (no valid
	// credential), PermissionDenied (a valid credential of another
	// workload), Unavailable (the check itself failed); any other error
	// refuses the stream as Unavailable. Messages say what to fix.
	Authenticate(ctx context.Context, bearer string, dp *resource.Resource) error
}

// opened records an open stream's context while the server has a
// ProxyAuthenticator: the credential is in its metadata, and a check
// under it ends with the stream.
func (s *Server) opened(ctx context.Context, streamID streamKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.ProxyAuthenticator != nil {
		s.openCtx[streamID] = ctx
	}
}

// authenticate checks the credential of a stream's first request when it
// names a Dataplane the server's ProxyAuthenticator covers. vouched is
// true when it did: the zone's token is then not required. Anything else
// (a malformed node.id, an unknown Dataplane, the ingress) is left to
// admission. Callers do not hold mu: a check may take a round trip to the
// Kubernetes API server, and must not hold up other streams.
func (s *Server) authenticate(streamID streamKey, cn *corev3.Node) (vouched bool, err error) {
	mesh, name, ok := strings.Cut(cn.GetId(), ".")
	if !ok || mesh == "" || name == "" {
		return false, nil
	}
	s.mu.Lock()
	auth := s.cfg.ProxyAuthenticator
	if auth == nil {
		s.mu.Unlock()
		return false, nil
	}
	_, admitted := s.streams[streamID]
	ctx := s.openCtx[streamID]
	var dp *resource.Resource
	if !admitted {
		if err := s.followDataplanes(); err != nil {
			s.mu.Unlock()
			return false, status.Errorf(codes.Unavailable, "node.id %q: reading this zone's Dataplanes failed: %v", quoteID(cn.GetId()), err)
		}
		dp, _ = s.dps.Get(resource.Key{Type: resource.DataplaneType, Mesh: mesh, Name: name})
	}
	s.mu.Unlock()
	if admitted || dp == nil || !auth.Covers(dp) {
		return false, nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	bearer, err := bearerToken(ctx, cn.GetId())
	if err != nil {
		return false, err
	}
	if err := auth.Authenticate(ctx, bearer, dp); err != nil {
		if _, ok := status.FromError(err); !ok {
			err = status.Errorf(codes.Unavailable, "node.id %q: checking its credential failed: %v", quoteID(cn.GetId()), err)
		}
		return false, err
	}
	return true, nil
}

// bearerToken is the token of the one "authorization: Bearer <token>" in
// ctx's incoming gRPC metadata.
func bearerToken(ctx context.Context, id string) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get(AuthorizationMetadataKey)
	fix := "the sidecar presents its pod's ServiceAccount token (audience atoll-xds, the injected atoll-token volume) as gRPC metadata " +
		AuthorizationMetadataKey + ": Bearer <token>"
	switch {
	case len(values) == 0:
		return "", status.Errorf(codes.Unauthenticated, "node.id %q: no credential: its Dataplane was made from a pod, whose proxy must present one: %s", quoteID(id), fix)
	case len(values) > 1:
		return "", status.Errorf(codes.Unauthenticated, "node.id %q: %d %s metadata values: send exactly one; %s", quoteID(id), len(values), AuthorizationMetadataKey, fix)
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", status.Errorf(codes.Unauthenticated, "node.id %q: the %s metadata is not \"Bearer <token>\": %s", quoteID(id), AuthorizationMetadataKey, fix)
	}
	return token, nil
}
