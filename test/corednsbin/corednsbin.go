// Package corednsbin finds the CoreDNS the tests and the DNS benchmark run:
// the version test/coredns/go.mod pins, with the plugins
// test/coredns/main.go compiles in, built by `make coredns` into the
// user's cache (~/.cache/atoll/tools/coredns-<version>), or the binary
// ATOLL_COREDNS names.
package corednsbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Version is CoreDNS's version, as test/coredns/go.mod requires it (a test
// keeps the two equal).
const Version = "v1.15.0"

// BinaryEnv names another CoreDNS binary.
const BinaryEnv = "ATOLL_COREDNS"

// Plugins are the plugins test/coredns/main.go compiles in (a test keeps
// the two equal); Path refuses a binary that lacks one of them.
var Plugins = []string{"bind", "cache", "errors", "file", "forward", "health", "kubernetes", "log", "ready"}

// Path is where CoreDNS is: ATOLL_COREDNS when set, else the versioned file
// in the user's cache. It says how to get it when it is not there or when
// it lacks a plugin of Plugins (a binary built before the list grew).
func Path() (string, error) {
	p := os.Getenv(BinaryEnv)
	fromEnv := p != ""
	if !fromEnv {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("finding the cache directory for CoreDNS (set %s instead): %w", BinaryEnv, err)
		}
		p = filepath.Join(cache, "atoll", "tools", "coredns-"+Version)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("CoreDNS %s is not at %s: run `make coredns` to build it (or set %s to a CoreDNS binary): %w", Version, p, BinaryEnv, err)
	}
	out, err := exec.Command(p, "-plugins").Output()
	if err != nil {
		return "", fmt.Errorf("listing the plugins of CoreDNS %s (%s -plugins): %w", p, p, err)
	}
	have := strings.Fields(string(out))
	var missing []string
	for _, want := range Plugins {
		if !slices.Contains(have, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		fix := "remove it and run `make coredns` to rebuild it from test/coredns"
		if fromEnv {
			fix = fmt.Sprintf("point %s at a CoreDNS built from test/coredns (`make coredns`)", BinaryEnv)
		}
		return "", fmt.Errorf("CoreDNS at %s lacks the plugins %s that the tests configure: %s", p, strings.Join(missing, ", "), fix)
	}
	return p, nil
}
