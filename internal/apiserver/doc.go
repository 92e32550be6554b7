// Package apiserver is the REST API shared by the global and zone control
// planes: resources in the file format under /meshes/... and /{type}/...,
// health and readiness endpoints, Prometheus metrics, and the HTTP server's
// lifecycle.
//
// Routes, for every registered type:
//
//	GET    /meshes                              list meshes
//	GET    /meshes/{mesh}/{plural}              list a mesh-scoped type
//	PUT    /meshes/{mesh}/{plural}/{name}       create or update
//	GET    /{plural}, /{plural}/{name}          global-scoped types (zones, meshes)
//
// A PUT without "version" creates or replaces; with "version" it only
// succeeds if the stored version still matches (409 otherwise).
//
// Protect asks callers for the API token, trusting loopback callers that
// address the API by a loopback name (DNS rebinding is refused). Listen
// serves over TLS when asked (certificate files, or a generated certificate
// whose CA is at /api-ca.pem) and bounds every request's body, header and
// time:
//
//	api, err := apiserver.Listen(ctx, apiserver.ListenConfig{
//		Addr: "127.0.0.1:5681", Handler: protected, Log: log,
//		TLS:  apiserver.TLS{Generate: true, Dir: filepath.Join(dataDir, "api-tls")},
//	})
package apiserver
