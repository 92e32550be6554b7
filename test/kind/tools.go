//go:build tools

// Package kind pins the kind CLI `make e2e-kind` runs (make kind builds
// sigs.k8s.io/kind at the version go.mod requires into
// ~/.cache/atoll/tools): a module of its own, so kind's dependencies never
// meet atoll's.
package kind

import _ "sigs.k8s.io/kind"
