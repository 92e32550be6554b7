package xds

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

var testAdmission = admission{zone: "zone-1", key: []byte("admission-test-key-admission-test")}

// maxMessage bounds an admission error's message: one node.id quoted
// (%q writes a byte as at most 4), the zone's name and the advice.
const maxMessage = 4*(maxQuotedID+3) + 400

// nodeWith is a node named id whose metadata holds token; "" leaves the
// token out, and other metadata stays.
func nodeWith(id, token string) *corev3.Node {
	n := &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"other": structpb.NewStringValue("x")}}}
	if token != "" {
		n.Metadata.Fields[TokenMetadataKey] = structpb.NewStringValue(token)
	}
	return n
}

// A stream's first request is admitted by its node.id and token.
func TestAdmit(t *testing.T) {
	tok := testAdmission.token
	for _, c := range []struct {
		what    string
		node    *corev3.Node
		require bool
		want    identity
		code    codes.Code
		says    string
	}{
		{what: "the ingress with its token", node: nodeWith("zone-1", tok("zone-1")), want: identity{id: "zone-1", ingress: true}},
		{what: "the ingress without a token", node: nodeWith("zone-1", ""), code: codes.Unauthenticated, says: "no token"},
		{what: "the ingress with a Dataplane's token", node: nodeWith("zone-1", tok("default.kong")), code: codes.Unauthenticated, says: "is not this zone's for that node"},
		{what: "another zone's ingress", node: nodeWith("zone-2", tok("zone-2")), code: codes.NotFound, says: `its ingress connects as node.id "zone-1"`},
		{what: "a Dataplane without a token", node: nodeWith("default.kong", ""), want: identity{id: "default.kong", mesh: "default", name: "kong"}},
		{what: "a Dataplane with its token", node: nodeWith("default.kong", tok("default.kong")), require: true, want: identity{id: "default.kong", mesh: "default", name: "kong"}},
		{what: "a Dataplane whose name has dots", node: nodeWith("default.kong.v1", ""), want: identity{id: "default.kong.v1", mesh: "default", name: "kong.v1"}},
		{what: "a Dataplane without a token, required", node: nodeWith("default.kong", ""), require: true, code: codes.Unauthenticated, says: "atollctl bootstrap"},
		{what: "a Dataplane with the ingress's token", node: nodeWith("default.kong", tok("zone-1")), code: codes.Unauthenticated, says: "is not this zone's for that node"},
		{what: "a Dataplane with a token of another key", node: nodeWith("default.kong", admission{key: []byte("another")}.token("default.kong")), code: codes.Unauthenticated},
		{what: "no node", node: nil, code: codes.InvalidArgument, says: "use <mesh>.<dataplane name>"},
		{what: "an empty node.id", node: nodeWith("", ""), code: codes.InvalidArgument},
		{what: "no mesh", node: nodeWith(".kong", ""), code: codes.InvalidArgument},
		{what: "no name", node: nodeWith("default.", ""), code: codes.InvalidArgument},
		{what: "a long node.id is quoted short", node: nodeWith(strings.Repeat("x", 10000), ""), code: codes.NotFound, says: strings.Repeat("x", maxQuotedID) + `..."`},
	} {
		t.Run(c.what, func(t *testing.T) {
			a := testAdmission
			a.requireTokens = c.require
			got, err := a.admit(c.node)
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.says) {
				t.Fatalf("admit: %v; want %s saying %q", err, c.code, c.says)
			}
			if got != c.want {
				t.Errorf("admitted as %+v, want %+v", got, c.want)
			}
			if len(status.Convert(err).Message()) > maxMessage {
				t.Errorf("a %d-byte message", len(status.Convert(err).Message()))
			}
		})
	}
}

// Every later request on a stream names no node or the admitted one.
func TestCheckLaterRequests(t *testing.T) {
	tok := testAdmission.token
	for _, c := range []struct {
		what     string
		admitted string
		node     *corev3.Node
		code     codes.Code
		says     string
	}{
		{what: "no node (Envoy after its first request)", admitted: "default.kong", node: nil},
		{what: "the same node without a token", admitted: "default.kong", node: nodeWith("default.kong", "")},
		{what: "the same node with its token (grpc-go)", admitted: "default.kong", node: nodeWith("default.kong", tok("default.kong"))},
		{what: "the ingress again, without its token", admitted: "zone-1", node: nodeWith("zone-1", "")},
		{what: "the same node with a wrong token", admitted: "default.kong", node: nodeWith("default.kong", "forged"), code: codes.Unauthenticated, says: "is not this zone's"},
		{what: "the ingress with its token on a Dataplane's stream", admitted: "default.kong", node: nodeWith("zone-1", tok("zone-1")),
			code: codes.PermissionDenied, says: `node.id "zone-1": this stream was admitted as node.id "default.kong"`},
		{what: "the ingress without a token on a Dataplane's stream", admitted: "default.kong", node: nodeWith("zone-1", ""), code: codes.PermissionDenied, says: `admitted as node.id "default.kong"`},
		{what: "another Dataplane with its token", admitted: "default.kong", node: nodeWith("default.backend", tok("default.backend")), code: codes.PermissionDenied},
		{what: "a Dataplane on the ingress's stream", admitted: "zone-1", node: nodeWith("default.kong", tok("default.kong")), code: codes.PermissionDenied},
		{what: "an empty node.id", admitted: "default.kong", node: &corev3.Node{}, code: codes.PermissionDenied},
		{what: "a node.id that differs in case", admitted: "default.kong", node: nodeWith("default.Kong", ""), code: codes.PermissionDenied},
	} {
		t.Run(c.what, func(t *testing.T) {
			err := testAdmission.check(c.admitted, c.node)
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.says) {
				t.Errorf("check: %v; want %s saying %q", err, c.code, c.says)
			}
		})
	}
}

// FuzzAdmission drives one stream through a sequence of requests built
// from the input and holds admission to its promises whatever comes: a
// stream is admitted only with a well-formed node.id and the token its
// kind requires; the ingress only with its own token; once admitted, every
// request that passes is the admitted node's (so the node whose
// configuration the stream gets never changes), and a request that names
// another node ends the stream with PermissionDenied.
//
// ids holds candidate node.ids, one a line (the zone's ingress and a
// Dataplane are always among them); each byte of script is one request:
// its low bits pick the node.id, bits 4-5 its token (none, the node's
// own, the ingress's, or forged), bit 6 no node at all.
func FuzzAdmission(f *testing.F) {
	f.Add("default.kong\nzone-1", "forged", []byte{0x10, 0x21, 0x40, 0x00}, false)
	f.Add("", "", []byte{0x11, 0x01, 0x10}, true)
	f.Add("default.\n.x\nzone-2\nmesh.a.b", "zz", []byte{0x02, 0x13, 0x34, 0x25, 0x40}, false)
	f.Fuzz(func(t *testing.T, ids, forged string, script []byte, require bool) {
		a := testAdmission
		a.requireTokens = require
		candidates := append([]string{"zone-1", "default.kong"}, strings.Split(ids, "\n")...)
		request := func(b byte) *corev3.Node {
			if b&0x40 != 0 {
				return nil
			}
			id := candidates[int(b&0x0f)%len(candidates)]
			switch (b >> 4) & 3 {
			case 1:
				return nodeWith(id, a.token(id))
			case 2:
				return nodeWith(id, a.token("zone-1"))
			case 3:
				return nodeWith(id, forged)
			}
			return nodeWith(id, "")
		}
		validToken := func(n *corev3.Node) (present, valid bool) {
			v, ok := n.GetMetadata().GetFields()[TokenMetadataKey]
			return ok, ok && v.GetStringValue() == a.token(n.GetId())
		}
		if len(script) == 0 {
			return
		}
		first := request(script[0])
		who, err := a.admit(first)
		if err != nil {
			if status.Code(err) == codes.Unknown || len(status.Convert(err).Message()) > maxMessage {
				t.Fatalf("admit(%q): %v", first.GetId(), err)
			}
			return
		}
		present, valid := validToken(first)
		switch {
		case who.id != first.GetId():
			t.Fatalf("node.id %q admitted as %q", first.GetId(), who.id)
		case who.ingress && (who.id != "zone-1" || !valid):
			t.Fatalf("admitted as the ingress: node.id %q, token valid %v", first.GetId(), valid)
		case !who.ingress && (who.mesh == "" || who.name == "" || who.mesh+"."+who.name != who.id):
			t.Fatalf("node.id %q admitted as mesh %q, name %q", who.id, who.mesh, who.name)
		case !who.ingress && present && !valid:
			t.Fatalf("node.id %q admitted with a wrong token", who.id)
		case !who.ingress && require && !valid:
			t.Fatalf("node.id %q admitted without its token, which is required", who.id)
		}
		// Once admitted, a request that passes is the admitted node's: the
		// node whose configuration the stream gets never changes.
		for _, b := range script[1:] {
			n := request(b)
			err := a.check(who.id, n)
			present, valid := validToken(n)
			switch {
			case n != nil && n.GetId() != who.id:
				if status.Code(err) != codes.PermissionDenied {
					t.Fatalf("on a stream admitted as %q, a request as %q: %v, want PermissionDenied", who.id, n.GetId(), err)
				}
				return // the stream ends
			case present && !valid:
				if status.Code(err) != codes.Unauthenticated {
					t.Fatalf("on a stream admitted as %q, a wrong token: %v, want Unauthenticated", who.id, err)
				}
				return
			case err != nil:
				t.Fatalf("on a stream admitted as %q, a request as %v: %v", who.id, n, err)
			}
		}
	})
}
