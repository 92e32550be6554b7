// Package xdsrelay is the sidecar's local xDS relay: it sits between the
// pod's Envoy and the zone's xDS server and attaches the pod's current
// ServiceAccount token to every stream Envoy opens.
//
// The zone (zone/xds, zone/kubernetes) checks a sidecar's credential once
// per stream, from the stream's gRPC metadata "authorization: Bearer
// <token>". Envoy's own gRPC initial_metadata is fixed in its bootstrap,
// while the projected token is rotated by the kubelet and expires: so
// Envoy connects to the relay over a Unix socket with no credential, and
// the relay opens the same method at the zone with the token read from
// TokenFile when the stream opens. A stream outlives its token; the next
// one (Envoy reconnects whenever a stream ends) carries the new token.
//
// One handler serves every method, with a codec that passes messages on
// as bytes: ADS, delta ADS and anything Envoy opens later are relayed
// without being decoded. Messages are copied both ways as they come, each
// direction by its own goroutine that never waits on the other, so the
// relay adds no coupling between requests and responses that a direct
// connection would not have.
// When Envoy ends the stream (or its connection) the zone's stream is
// cancelled; when the zone ends it, Envoy gets the zone's status code,
// message and trailers. Of Envoy's metadata only what is safe is
// forwarded: never a credential it sent, nor the headers of its own
// hop. A token file that is missing, empty or unreadable fails the
// stream with codes.Unavailable naming the file, and Envoy retries.
//
// With CAPEM the relay speaks TLS to the zone, verifying its certificate
// against that CA with the host of Upstream as the server name.
//
//	r, err := xdsrelay.New(xdsrelay.Config{
//		Upstream:  "atoll-zone.atoll-system.svc:5678",
//		CAPEM:     caPEM, // nil: plaintext
//		TokenFile: "/var/run/secrets/atoll.io/token",
//		Logger:    logger,
//	})
//	lis, err := xdsrelay.ListenUnix("/var/run/atoll/xds.sock")
//	err = r.Run(ctx, lis) // serves until ctx ends
package xdsrelay
