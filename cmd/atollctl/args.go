package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/yamlpos"
)

// The positional-argument checks of atollctl's commands. Each error says
// which argument is missing or extra and ends with the command line that
// works, in place of cobra's "accepts 2 arg(s), received 1".

// noArgs refuses positional arguments; usage says how the command takes
// its input instead.
func noArgs(usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unexpected argument %q: %s", args[0], usage)
		}
		return nil
	}
}

// oneArg takes exactly one argument, what names it (the key's ID).
func oneArg(what, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return fmt.Errorf("missing %s: %s", what, usage)
		case len(args) > 1:
			return fmt.Errorf("too many arguments (%s): %s", strings.Join(args[1:], " "), usage)
		}
		return nil
	}
}

// typeList names the types get shows, for messages.
func typeList() string {
	var names []string
	for _, d := range resource.Types.All() {
		names = append(names, d.Plural)
	}
	return strings.Join(append(names, "services", "vips", "proxies", "zone-token-keys"), ", ")
}

// writtenTypes names the types users write (and delete), for messages.
func writtenTypes() string {
	var names []string
	for _, d := range resource.Types.All() {
		if d.Writer != resource.WrittenBySystem {
			names = append(names, d.Plural)
		}
	}
	return strings.Join(names, ", ")
}

// getArgs takes TYPE and an optional NAME.
func getArgs(cmd *cobra.Command, args []string) error {
	const usage = "atollctl get TYPE [NAME] [--mesh MESH] [-o table|json|yaml]"
	switch {
	case len(args) == 0:
		return fmt.Errorf("missing the resource type: %s, where TYPE is one of %s", usage, typeList())
	case len(args) > 2:
		return fmt.Errorf("too many arguments (%s): %s shows every resource of a type, or the one named", strings.Join(args[2:], " "), usage)
	}
	return nil
}

// deleteArgs takes TYPE and NAME; a known TYPE without NAME is answered
// with the usage for that type.
func deleteArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing the resource type and name: atollctl delete TYPE NAME [--mesh MESH], where TYPE is one of %s", writtenTypes())
	}
	d, err := typeArg(args[0])
	if err != nil {
		return err
	}
	usage := "atollctl delete " + d.Singular + " NAME"
	if d.Scope == resource.ScopeMesh {
		usage += " [--mesh MESH]"
	}
	switch {
	case len(args) == 1:
		return fmt.Errorf("missing the %s's name: %s", d.Type, usage)
	case len(args) > 2:
		return fmt.Errorf("too many arguments (%s): %s deletes one %s", strings.Join(args[2:], " "), usage, d.Type)
	}
	return nil
}

// inspectArgs takes "dataplane NAME".
func inspectArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return fmt.Errorf("missing what to inspect: %s", inspectUsage)
	case isIngressArg(args[0]):
		if len(args) == 1 {
			return fmt.Errorf("missing the ingress's zone: %s", inspectUsage)
		}
	case args[0] != "dataplane" && args[0] != "dataplanes" && args[0] != "dp":
		return fmt.Errorf("cannot inspect %q: a Dataplane's proxy or a zone's ingress is shown: %s", args[0], inspectUsage)
	case len(args) == 1:
		return fmt.Errorf("missing the Dataplane's name: %s", inspectUsage)
	}
	if len(args) > 2 {
		return fmt.Errorf("too many arguments (%s): %s", strings.Join(args[2:], " "), inspectUsage)
	}
	return nil
}

// bootstrapArgs takes "dataplane NAME" or "ingress ZONE".
func bootstrapArgs(cmd *cobra.Command, args []string) error {
	const (
		dpUsage      = "atollctl bootstrap dataplane NAME [--mesh MESH] [--kind envoy|proxyless] [--xds HOST:PORT]"
		ingressUsage = "atollctl bootstrap ingress ZONE [--xds HOST:PORT]"
	)
	if len(args) == 0 {
		return fmt.Errorf("missing what to bootstrap: %s, or %s", dpUsage, ingressUsage)
	}
	var what, usage string
	switch args[0] {
	case "dataplane", "dp":
		what, usage = "the Dataplane's name", dpUsage
	case "ingress", "zoneingress":
		what, usage = "the zone whose ingress to bootstrap", ingressUsage
	default:
		return fmt.Errorf("cannot bootstrap %q: bootstraps are for a Dataplane's proxy (%s) or a zone's ingress (%s)", args[0], dpUsage, ingressUsage)
	}
	switch {
	case len(args) == 1:
		return fmt.Errorf("missing %s: %s", what, usage)
	case len(args) > 2:
		return fmt.Errorf("too many arguments (%s): %s", strings.Join(args[2:], " "), usage)
	}
	return nil
}

// subcommandArgs refuses an argument that is none of a group command's
// subcommands (generate, revoke, rotate, retire), naming those that are;
// bare, the group prints its help (runGroup).
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var usages, names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() {
			usages = append(usages, cmd.CommandPath()+" "+sub.Use)
			names = append(names, sub.Name())
		}
	}
	if s := yamlpos.Closest(args[0], names); s != "" {
		sub, _, _ := cmd.Find([]string{s})
		return fmt.Errorf("unknown command %q; did you mean %q? %s %s", args[0], s, cmd.CommandPath(), sub.Use)
	}
	return fmt.Errorf("unknown command %q: use %s", args[0], strings.Join(usages, ", or "))
}

// runGroup prints a group command's help when it is run bare.
func runGroup(cmd *cobra.Command, args []string) error { return cmd.Help() }
