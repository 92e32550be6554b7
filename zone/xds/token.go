package xds

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Proxies prove who they are with a token in their node metadata: an HMAC
// of their node.id under the zone's key, handed out in the bootstraps the
// zone's API serves. The xDS port must be reachable by every proxy; the
// token keeps one proxy (or anything else on the network) from taking
// another's configuration — above all the ingress's, which carries its
// TLS key. The ingress always needs its token; Dataplanes' proxies do with
// RequireTokens, and a wrong token is refused either way.

// TokenMetadataKey is the node metadata field that carries the token.
const TokenMetadataKey = "atoll.io/token"

// Token is the token of nodeID.
func (s *Server) Token(nodeID string) string {
	mac := hmac.New(sha256.New, s.tokenKey)
	mac.Write([]byte("atoll xDS node\x00" + nodeID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// checkToken admits cn's token: required when required, checked whenever
// present.
func (s *Server) checkToken(cn *corev3.Node, required bool) error {
	v, present := cn.GetMetadata().GetFields()[TokenMetadataKey]
	if !present {
		if !required {
			return nil
		}
		return status.Errorf(codes.Unauthenticated, "node.id %q: no token in the node metadata (%s): start the proxy from the bootstrap the zone serves (atollctl bootstrap ...)", cn.GetId(), TokenMetadataKey)
	}
	if !hmac.Equal([]byte(v.GetStringValue()), []byte(s.Token(cn.GetId()))) {
		return status.Errorf(codes.Unauthenticated, "node.id %q: the token in the node metadata (%s) is not this zone's for that node: fetch the bootstrap again from this zone (atollctl bootstrap ...)", cn.GetId(), TokenMetadataKey)
	}
	return nil
}
