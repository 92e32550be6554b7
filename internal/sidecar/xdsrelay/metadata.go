package xdsrelay

import (
	"strings"

	"google.golang.org/grpc/metadata"
)

// authorizationKey is the gRPC metadata key of the credential the relay
// attaches (zone/xds.AuthorizationMetadataKey; not imported, to keep the
// sidecar free of the zone's code).
const authorizationKey = "authorization"

// unforwarded are the metadata keys the relay never copies from one side
// to the other: credentials (the relay attaches its own, and the zone
// refuses a stream with two), and headers of the HTTP/2 connection or of
// gRPC itself, which each side's transport sets for its own hop.
var unforwarded = map[string]bool{
	authorizationKey:      true,
	"proxy-authorization": true,
	"cookie":              true,
	"set-cookie":          true,
	"content-type":        true,
	"user-agent":          true,
	"te":                  true,
	"host":                true,
	"connection":          true,
	"keep-alive":          true,
	"proxy-connection":    true,
	"transfer-encoding":   true,
	"upgrade":             true,
}

// forwarded is the part of md that may cross the relay: everything but
// the keys above, HTTP/2 pseudo-headers (":authority") and gRPC's own
// ("grpc-*"). Keys are lowercase in grpc-go's metadata.
func forwarded(md metadata.MD) metadata.MD {
	out := metadata.MD{}
	for k, v := range md {
		k = strings.ToLower(k)
		if unforwarded[k] || strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") {
			continue
		}
		out[k] = append(out[k], v...)
	}
	return out
}
