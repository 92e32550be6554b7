//go:build tools

// Package helm pins the helm CLI the chart tests run (make helm builds
// helm.sh/helm/v4/cmd/helm at the version go.mod requires into
// ~/.cache/atoll/tools): a module of its own, so helm's dependencies never
// meet atoll's.
package helm

import _ "helm.sh/helm/v4/cmd/helm"
