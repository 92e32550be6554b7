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
package apiserver
