package transparentproxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// backend resolves a.Backend, detecting it when it is auto.
func (a *Applier) backend(ctx context.Context, ipv6 bool) (Backend, error) {
	if a.Backend != "" && a.Backend != BackendAuto {
		if !a.installed(a.Backend, ipv6) {
			return "", fmt.Errorf("--%s %s: %s and %s are not installed: install iptables or choose another backend",
				FlagBackend, a.Backend, a.tools(a.Backend, false).save, a.tools(a.Backend, false).restore)
		}
		return a.Backend, nil
	}
	var present []Backend
	for _, b := range []Backend{BackendNFT, BackendLegacy} {
		if a.installed(b, ipv6) {
			present = append(present, b)
		}
	}
	switch len(present) {
	case 0:
		return "", ErrNoIptables
	case 1:
		return present[0], nil
	}
	// Both are installed: the one holding rules wins, as another component
	// (a CNI plugin, kube-proxy) set the namespace up with it and rules of
	// the other would be evaluated separately.
	nft, nftErr := a.countRules(ctx, BackendNFT)
	legacy, legacyErr := a.countRules(ctx, BackendLegacy)
	switch {
	case nftErr != nil && legacyErr != nil:
		return "", fmt.Errorf("detecting the iptables backend (choose one with --%s): %w", FlagBackend, errors.Join(nftErr, legacyErr))
	case nftErr != nil: // the kernel lacks nf_tables
		return BackendLegacy, nil
	case legacyErr != nil: // the kernel lacks x_tables
		return BackendNFT, nil
	}
	switch {
	case nft > legacy:
		return BackendNFT, nil
	case legacy > nft:
		return BackendLegacy, nil
	}
	if b, ok := a.plainBackend(ctx); ok {
		return b, nil
	}
	return BackendNFT, nil
}

// countRules counts the rules of every table of the IPv4 family.
func (a *Applier) countRules(ctx context.Context, b Backend) (int, error) {
	out, err := a.Runner.Run(ctx, "", a.tools(b, false).save)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") {
			n++
		}
	}
	return n, nil
}

// plainBackend is the backend the plain iptables-restore command uses.
func (a *Applier) plainBackend(ctx context.Context) (Backend, bool) {
	if _, err := a.Runner.LookPath("iptables-restore"); err != nil {
		return "", false
	}
	out, err := a.Runner.Run(ctx, "", "iptables-restore", "--version")
	if err != nil {
		return "", false
	}
	switch {
	case strings.Contains(out, "nf_tables"):
		return BackendNFT, true
	case strings.Contains(out, "legacy"):
		return BackendLegacy, true
	}
	return "", false
}

// tools names the commands of a backend and family: iptables-nft-save
// and the like, which Debian, Fedora and Alpine install for both
// backends.
func (a *Applier) tools(b Backend, v6 bool) tools {
	prefix := "iptables"
	if v6 {
		prefix = "ip6tables"
	}
	return tools{
		save:    prefix + "-" + string(b) + "-save",
		restore: prefix + "-" + string(b) + "-restore",
	}
}

func (a *Applier) installed(b Backend, ipv6 bool) bool {
	for _, v6 := range []bool{false, ipv6} {
		t := a.tools(b, v6)
		for _, name := range []string{t.save, t.restore} {
			if _, err := a.Runner.LookPath(name); err != nil {
				return false
			}
		}
	}
	return true
}
