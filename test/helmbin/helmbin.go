// Package helmbin finds the helm CLI the chart tests run: the version
// test/helm/go.mod pins, built by `make helm` into the user's cache
// (~/.cache/atoll/tools/helm-<version>), or the binary ATOLL_HELM names.
package helmbin

import (
	"fmt"
	"os"
	"path/filepath"
)

// Version is helm's version, as test/helm/go.mod requires it (a test
// keeps the two equal).
const Version = "v4.3.1"

// BinaryEnv names another helm binary.
const BinaryEnv = "ATOLL_HELM"

// Path is where helm is: ATOLL_HELM when set, else the versioned file in
// the user's cache. It says how to get it when it is not there.
func Path() (string, error) {
	p := os.Getenv(BinaryEnv)
	if p == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("finding the cache directory for helm (set %s instead): %w", BinaryEnv, err)
		}
		p = filepath.Join(cache, "atoll", "tools", "helm-"+Version)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("helm %s is not at %s: run `make helm` to build it (or set %s to a helm binary): %w", Version, p, BinaryEnv, err)
	}
	return p, nil
}
