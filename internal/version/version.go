// Package version carries the build's version, set by the Makefile with
// -ldflags "-X github.com/atoll-mesh/atoll/internal/version.Version=...".
package version

// Version and Commit describe the build.
var (
	Version = "dev"
	Commit  = "unknown"
)

// String is "VERSION (COMMIT)".
func String() string { return Version + " (" + Commit + ")" }
