package xds

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Admission: who may take which configuration on the xDS port.
//
// The xDS port must be reachable by every proxy, so a proxy proves who it
// is with a token in its node metadata: an HMAC of its node.id under the
// zone's key, handed out in the bootstraps the zone's API serves. The
// token keeps one proxy (or anything else on the network) from taking
// another's configuration — above all the ingress's, which carries its TLS
// key.
//
// A stream is admitted on its first request, as the node it names:
//   - node.id "<mesh>.<dataplane name>": a Dataplane's proxy. Its token is
//     required with RequireTokens and checked whenever present. With a
//     ProxyAuthenticator (Kubernetes mode), the proxies of the Dataplanes
//     it covers present a credential on the stream instead, checked
//     before admission (credentials.go); their token is then not required.
//   - node.id = the zone's name: the zone's ingress. Its token is always
//     required.
//   - anything else is refused: InvalidArgument (malformed), NotFound
//     (another zone's ingress); a missing or wrong token Unauthenticated.
//
// A stream serves one node. Every later request on it names either no node
// (Envoy sends the node on the first request only) or the node the stream
// was admitted as (grpc-go may send it on each); a request naming another
// node.id, an empty one included, ends the stream with PermissionDenied,
// before anything of that node is looked up. A later request with the
// admitted node.id and no token is the admitted node (the stream proved
// itself on its first request); one with a token that is not that node's
// ends the stream with Unauthenticated, as it would have on the first.

// TokenMetadataKey is the node metadata field that carries the token.
const TokenMetadataKey = "atoll.io/token"

// maxQuotedID bounds how much of a peer's node.id is quoted back in
// errors and logs.
const maxQuotedID = 128

// admission applies the rules above. It holds no state: a stream's
// admitted node.id is kept by its caller.
type admission struct {
	zone string
	key  []byte
	// requireTokens refuses Dataplanes' proxies without a token.
	requireTokens bool
}

// identity is what a stream was admitted as.
type identity struct {
	id string
	// ingress is the zone's ingress; otherwise a Dataplane's proxy, with
	// its mesh and name.
	ingress    bool
	mesh, name string
}

// token is the token of nodeID.
func (a admission) token(nodeID string) string {
	mac := hmac.New(sha256.New, a.key)
	mac.Write([]byte("atoll xDS node\x00" + nodeID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Token is the token of nodeID.
func (s *Server) Token(nodeID string) string { return s.admission().token(nodeID) }

// admission is the server's admission under its current settings.
func (s *Server) admission() admission {
	return admission{zone: s.cfg.Zone, key: s.tokenKey, requireTokens: s.cfg.RequireTokens}
}

// admit checks the node of a stream's first request: its node.id and
// token. Whether a Dataplane of that name exists is the caller's to check.
func (a admission) admit(cn *corev3.Node) (identity, error) {
	id := cn.GetId()
	if id != "" && !strings.Contains(id, ".") {
		if id != a.zone {
			return identity{}, status.Errorf(codes.NotFound, "node.id %q: this is zone %q; its ingress connects as node.id %q, Dataplanes as <mesh>.<dataplane name>", quoteID(id), a.zone, a.zone)
		}
		if err := a.checkToken(cn, true); err != nil {
			return identity{}, err
		}
		return identity{id: id, ingress: true}, nil
	}
	mesh, name, ok := strings.Cut(id, ".")
	if !ok || mesh == "" || name == "" {
		return identity{}, status.Errorf(codes.InvalidArgument, "node.id %q: use <mesh>.<dataplane name>, e.g. default.kong (or the zone's name for its ingress)", quoteID(id))
	}
	if err := a.checkToken(cn, a.requireTokens); err != nil {
		return identity{}, err
	}
	return identity{id: id, mesh: mesh, name: name}, nil
}

// check checks the node of a later request on a stream admitted as
// admitted (a node.id).
func (a admission) check(admitted string, cn *corev3.Node) error {
	if cn == nil {
		return nil
	}
	if cn.GetId() != admitted {
		return status.Errorf(codes.PermissionDenied, "node.id %q: this stream was admitted as node.id %q and serves that node only: open a new stream for another node", quoteID(cn.GetId()), admitted)
	}
	return a.checkToken(cn, false)
}

// checkToken admits cn's token: required when required, checked whenever
// present.
func (a admission) checkToken(cn *corev3.Node, required bool) error {
	v, present := cn.GetMetadata().GetFields()[TokenMetadataKey]
	if !present {
		if !required {
			return nil
		}
		return status.Errorf(codes.Unauthenticated, "node.id %q: no token in the node metadata (%s): start the proxy from the bootstrap the zone serves (atollctl bootstrap ...)", quoteID(cn.GetId()), TokenMetadataKey)
	}
	if !hmac.Equal([]byte(v.GetStringValue()), []byte(a.token(cn.GetId()))) {
		return status.Errorf(codes.Unauthenticated, "node.id %q: the token in the node metadata (%s) is not this zone's for that node: fetch the bootstrap again from this zone (atollctl bootstrap ...)", quoteID(cn.GetId()), TokenMetadataKey)
	}
	return nil
}

// quoteID is id cut to maxQuotedID bytes, for errors and logs (%q makes
// each byte at most 4): a peer's node.id can be as long as a gRPC message.
func quoteID(id string) string {
	if len(id) <= maxQuotedID {
		return id
	}
	return id[:maxQuotedID] + "..."
}
