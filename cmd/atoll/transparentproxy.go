package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/atoll-mesh/atoll/internal/transparentproxy"
)

func transparentProxyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transparent-proxy",
		Short: "Install or remove the iptables rules that steer a pod's traffic through its sidecar",
		Long: `Install or remove the nat rules that send a pod's outbound TCP to Envoy's
outbound port, its DNS queries (UDP and TCP port 53) to the sidecar's DNS port
and, unless --redirect-inbound=false (gateways), its inbound TCP to Envoy's
inbound port. Traffic of --proxy-uid and to loopback is never redirected.
The rules live in atoll's own chains (ATOLL_*) and are applied with one
iptables-restore call per IP family. The init container atoll-init runs
"atoll transparent-proxy install".`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(transparentProxyInstall(), transparentProxyUninstall())
	return cmd
}

// installFlags are the flags of "transparent-proxy install".
type installFlags struct {
	cfg                                transparentproxy.Config
	cidrs, inboundPorts, outboundPorts []string
	backend                            string
	dryRun                             bool
}

func (f *installFlags) register(fs *pflag.FlagSet) {
	f.cfg = transparentproxy.Default()
	fs.IntVar(&f.cfg.ProxyUID, transparentproxy.FlagProxyUID, f.cfg.ProxyUID, "UID Envoy runs as; its traffic is not redirected")
	fs.IntVar(&f.cfg.OutboundPort, transparentproxy.FlagOutboundPort, f.cfg.OutboundPort, "Envoy's outbound (original destination) port")
	fs.IntVar(&f.cfg.InboundPort, transparentproxy.FlagInboundPort, f.cfg.InboundPort, "Envoy's inbound port")
	fs.IntVar(&f.cfg.DNSPort, transparentproxy.FlagDNSPort, f.cfg.DNSPort, "the sidecar's DNS port (UDP and TCP)")
	fs.BoolVar(&f.cfg.RedirectInbound, transparentproxy.FlagRedirectInbound, f.cfg.RedirectInbound, "redirect inbound TCP to the inbound port (false for gateways)")
	fs.BoolVar(&f.cfg.RedirectDNS, transparentproxy.FlagRedirectDNS, f.cfg.RedirectDNS, "redirect DNS queries (port 53) to the DNS port")
	fs.StringSliceVar(&f.inboundPorts, transparentproxy.FlagExcludeInboundPorts, []string{fmt.Sprint(transparentproxy.DefaultAdminPort)}, "inbound ports not redirected (comma-separate or repeat; empty for none)")
	fs.StringSliceVar(&f.outboundPorts, transparentproxy.FlagExcludeOutboundPorts, nil, "outbound TCP destination ports not redirected")
	fs.StringSliceVar(&f.cidrs, transparentproxy.FlagExcludeOutboundCIDRs, nil, "outbound destinations (IPv4 or IPv6 CIDRs) not redirected")
	fs.BoolVar(&f.cfg.IPv6, transparentproxy.FlagIPv6, false, "install the IPv6 rules too (ip6tables); not given: when the namespace has an IPv6 address other than loopback and link-local")
	registerApplyFlags(fs, &f.backend, &f.dryRun, "print the rules that would be applied and change nothing")
}

// config is the validated configuration the flags describe.
func (f *installFlags) config() (transparentproxy.Config, error) {
	cfg := f.cfg
	var err error
	if cfg.ExcludeInboundPorts, err = transparentproxy.ParsePorts(transparentproxy.FlagExcludeInboundPorts, f.inboundPorts); err != nil {
		return cfg, err
	}
	if cfg.ExcludeOutboundPorts, err = transparentproxy.ParsePorts(transparentproxy.FlagExcludeOutboundPorts, f.outboundPorts); err != nil {
		return cfg, err
	}
	if cfg.ExcludeOutboundCIDRs, err = parseCIDRs(f.cidrs); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func transparentProxyInstall() *cobra.Command {
	var flags installFlags
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the rules (again: replaces atoll's earlier rules)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := flags.config()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed(transparentproxy.FlagIPv6) {
				if cfg.IPv6, err = detectIPv6(cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			a, err := applier(flags.backend)
			if err != nil {
				return err
			}
			plan, err := a.Install(cmd.Context(), cfg, flags.dryRun)
			if err != nil {
				return err
			}
			report(cmd.OutOrStdout(), plan, flags.dryRun, "installed")
			return nil
		},
	}
	flags.register(cmd.Flags())
	return cmd
}

func transparentProxyUninstall() *cobra.Command {
	var backend string
	var dryRun, ipv6 bool
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove atoll's rules, leaving every other rule as it was",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed(transparentproxy.FlagIPv6) {
				var err error
				if ipv6, err = detectIPv6(cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			a, err := applier(backend)
			if err != nil {
				return err
			}
			plan, err := a.Uninstall(cmd.Context(), ipv6, dryRun)
			if err != nil {
				return err
			}
			report(cmd.OutOrStdout(), plan, dryRun, "removed")
			return nil
		},
	}
	cmd.Flags().BoolVar(&ipv6, transparentproxy.FlagIPv6, false, "remove the IPv6 rules too (ip6tables); not given: when the namespace has an IPv6 address other than loopback and link-local")
	registerApplyFlags(cmd.Flags(), &backend, &dryRun, "print what would be removed and change nothing")
	return cmd
}

// detectIPv6 decides --ipv6 when it is not given, and says so.
func detectIPv6(out io.Writer) (bool, error) {
	has, addr, err := transparentproxy.HasIPv6()
	if err != nil {
		return false, fmt.Errorf("--%s not given, and deciding it failed (give --%s=true or false): %w", transparentproxy.FlagIPv6, transparentproxy.FlagIPv6, err)
	}
	if has {
		fmt.Fprintf(out, "# IPv6: the namespace has %s: the IPv6 rules too (--%s=false to skip them)\n", addr, transparentproxy.FlagIPv6)
	}
	return has, nil
}

func registerApplyFlags(fs *pflag.FlagSet, backend *string, dryRun *bool, dryRunUsage string) {
	fs.StringVar(backend, transparentproxy.FlagBackend, string(transparentproxy.BackendAuto), "iptables backend: auto (the one holding rules, else the one iptables uses), nft or legacy")
	fs.BoolVar(dryRun, transparentproxy.FlagDryRun, false, dryRunUsage)
}

func applier(backend string) (*transparentproxy.Applier, error) {
	b, err := transparentproxy.ParseBackend(backend)
	if err != nil {
		return nil, err
	}
	return &transparentproxy.Applier{Runner: transparentproxy.ExecRunner{}, Backend: b}, nil
}

func parseCIDRs(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("--%s: %q is not a CIDR: use prefixes such as 10.0.0.0/8 or fd00::/8", transparentproxy.FlagExcludeOutboundCIDRs, v)
		}
		out = append(out, p)
	}
	return out, nil
}

// report prints the plan on a dry run and one line otherwise.
func report(w io.Writer, plan transparentproxy.Plan, dryRun bool, done string) {
	backend := string(plan.Backend)
	if backend == "" {
		backend = "none found"
	}
	if dryRun {
		fmt.Fprintf(w, "# iptables backend: %s\n", backend)
		if plan.V4 == "" && plan.V6 == "" {
			fmt.Fprintln(w, "# nothing to do")
		}
		if plan.V4 != "" {
			fmt.Fprintf(w, "# iptables-restore --noflush\n%s", plan.V4)
		}
		if plan.V6 != "" {
			fmt.Fprintf(w, "# ip6tables-restore --noflush\n%s", plan.V6)
		}
		return
	}
	if plan.V4 == "" && plan.V6 == "" {
		fmt.Fprintf(w, "transparent proxy: no atoll rules (iptables %s)\n", backend)
		return
	}
	fmt.Fprintf(w, "transparent proxy: rules %s (iptables %s)\n", done, backend)
}
