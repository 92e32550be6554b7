package transparentproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// Backend is the kernel interface the iptables tools drive.
type Backend string

const (
	// BackendAuto picks the backend the namespace already uses (see
	// Applier.Backend).
	BackendAuto Backend = "auto"
	// BackendNFT is iptables over nf_tables (iptables-nft).
	BackendNFT Backend = "nft"
	// BackendLegacy is iptables over the legacy x_tables interface.
	BackendLegacy Backend = "legacy"
)

// ParseBackend reads the --iptables-backend flag.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case BackendAuto, BackendNFT, BackendLegacy:
		return b, nil
	}
	return "", fmt.Errorf("--%s %q is invalid: use auto, nft or legacy", FlagBackend, s)
}

// Runner runs the iptables tools. ExecRunner runs them on this machine.
type Runner interface {
	// LookPath reports whether the tool is installed, as exec.LookPath.
	LookPath(name string) (string, error)
	// Run runs the tool with stdin and returns its standard output; the
	// error carries its standard error.
	Run(ctx context.Context, stdin string, name string, args ...string) (string, error)
}

// ExecRunner runs the tools as processes, each prefixed by Prefix when it
// is set (for example ip netns exec NAME).
type ExecRunner struct {
	Prefix []string
}

var _ Runner = ExecRunner{}

// LookPath implements Runner.
func (ExecRunner) LookPath(name string) (string, error) { return exec.LookPath(name) }

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	argv := append(slices.Clone(r.Prefix), name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ErrNoIptables means no iptables tools were found.
var ErrNoIptables = errors.New("iptables-restore is not installed: install iptables (atoll's init image ships it; for the tests run make tools)")

// tools are the commands of one backend and family.
type tools struct{ save, restore string }

// Applier installs and removes atoll's rules.
type Applier struct {
	Runner Runner
	// Backend is BackendAuto (or empty) to detect: the backend that already
	// holds rules in the namespace wins; when both or neither do, the one
	// the plain iptables command reports, and nf_tables when that is
	// missing too.
	Backend Backend
}

// Plan is what Install or Uninstall applies (or applied): the backend and
// the iptables-restore input per family; an empty input means nothing to
// do for that family.
type Plan struct {
	Backend Backend
	V4, V6  string
}

// Install applies the rules of cfg with one "iptables-restore --noflush"
// call per family, so each family changes atomically. Installing again
// replaces atoll's rules in the same call (idempotent; a changed cfg takes
// effect), and no other rule is touched. With dryRun it returns the plan
// and changes nothing (without iptables installed, the plan has no backend
// and the fresh rules).
func (a *Applier) Install(ctx context.Context, cfg Config, dryRun bool) (Plan, error) {
	if err := cfg.Validate(); err != nil {
		return Plan{}, err
	}
	v4, v6 := Rules(cfg)
	backend, err := a.backend(ctx, cfg.IPv6)
	if dryRun && errors.Is(err, ErrNoIptables) {
		// Nothing is installed where iptables is not: the fresh rules are
		// what would be applied.
		return Plan{V4: v4, V6: v6}, nil
	}
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{Backend: backend}
	for _, f := range a.families(backend, cfg.IPv6) {
		saved, err := a.Runner.Run(ctx, "", f.tools.save, "-t", "nat")
		if err != nil {
			return Plan{}, fmt.Errorf("reading the nat table: %w", err)
		}
		rules := v4
		if f.v6 {
			rules = v6
		}
		plan.set(f.v6, replace(parseSaved(saved), rules))
	}
	if dryRun {
		return plan, nil
	}
	return plan, a.apply(ctx, plan)
}

// Uninstall removes atoll's jumps and chains, leaving every other rule as
// it was, with one call per family; a namespace without them is left
// alone (idempotent). ipv6 also cleans the IPv6 rules.
func (a *Applier) Uninstall(ctx context.Context, ipv6, dryRun bool) (Plan, error) {
	backend, err := a.backend(ctx, ipv6)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{Backend: backend}
	for _, f := range a.families(backend, ipv6) {
		saved, err := a.Runner.Run(ctx, "", f.tools.save, "-t", "nat")
		if err != nil {
			return Plan{}, fmt.Errorf("reading the nat table: %w", err)
		}
		if s := parseSaved(saved); len(s.chains) > 0 || len(s.jumps) > 0 {
			plan.set(f.v6, "*nat\n"+s.removal()+"COMMIT\n")
		}
	}
	if dryRun {
		return plan, nil
	}
	return plan, a.apply(ctx, plan)
}

func (p *Plan) set(v6 bool, input string) {
	if v6 {
		p.V6 = input
	} else {
		p.V4 = input
	}
}

type familyTools struct {
	v6    bool
	tools tools
}

func (a *Applier) families(b Backend, ipv6 bool) []familyTools {
	f := []familyTools{{false, a.tools(b, false)}}
	if ipv6 {
		f = append(f, familyTools{true, a.tools(b, true)})
	}
	return f
}

func (a *Applier) apply(ctx context.Context, plan Plan) error {
	for _, f := range a.families(plan.Backend, plan.V6 != "") {
		input := plan.V4
		if f.v6 {
			input = plan.V6
		}
		if input == "" {
			continue
		}
		if _, err := a.Runner.Run(ctx, input, f.tools.restore, "--noflush"); err != nil {
			return fmt.Errorf("applying the rules (nothing of this family changed): %w", err)
		}
	}
	return nil
}

// saved is what iptables-save shows of atoll in the nat table.
type saved struct {
	chains []string // atoll's chains
	jumps  []string // rules of other chains that jump to them, without "-A "
}

func parseSaved(out string) saved {
	var s saved
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, ":"+ChainPrefix):
			s.chains = append(s.chains, strings.Fields(l[1:])[0])
		case strings.HasPrefix(l, "-A ") && !strings.HasPrefix(l, "-A "+ChainPrefix) &&
			strings.Contains(l, " -j "+ChainPrefix):
			s.jumps = append(s.jumps, strings.TrimPrefix(l, "-A "))
		}
	}
	return s
}

// removal deletes the jumps, then flushes atoll's chains and deletes
// those not in keep.
func (s saved) removal(keep ...string) string {
	var b strings.Builder
	for _, j := range s.jumps {
		b.WriteString("-D " + j + "\n")
	}
	for _, c := range s.chains {
		b.WriteString("-F " + c + "\n")
	}
	for _, c := range s.chains {
		if !slices.Contains(keep, c) {
			b.WriteString("-X " + c + "\n")
		}
	}
	return b.String()
}

// replace turns fresh rules into a replacement of what is installed: the
// new chains are declared, the old jumps and chains removed, then the new
// rules appended, all in one transaction.
func replace(s saved, rules string) string {
	if len(s.chains) == 0 && len(s.jumps) == 0 {
		return rules
	}
	lines := strings.Split(strings.TrimSuffix(rules, "\n"), "\n")
	var decl, declared, body []string
	for _, l := range lines[1 : len(lines)-1] { // between *nat and COMMIT
		if strings.HasPrefix(l, ":") {
			decl = append(decl, l)
			declared = append(declared, strings.Fields(l[1:])[0])
		} else {
			body = append(body, l)
		}
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, l := range decl {
		b.WriteString(l + "\n")
	}
	b.WriteString(s.removal(declared...))
	for _, l := range body {
		b.WriteString(l + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}
