package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/yamlpos"
)

func applyCommand(c *client) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|-",
		Short: "Create or update resources from YAML or JSON files",
		Long: `Create or update the resources in FILE (or standard input with -f -).
A file may hold several resources separated by '---'. The whole file is read
and checked for syntax first; nothing is sent if any document is malformed.
Each resource is reported created, updated, or unchanged (nothing written:
its spec and labels are those stored). What get -o yaml prints applies back
unchanged.`,
		Args: noArgs("give files with -f: atollctl apply -f FILE (or -f - for standard input)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				return errors.New("no input: give -f FILE, or -f - for standard input")
			}
			var all []*resource.Resource
			for _, f := range files {
				data, err := readInput(f, cmd.InOrStdin())
				if err != nil {
					return err
				}
				rs, err := resource.DecodeAll(data)
				if err != nil {
					// FILE:LINE: PATH: what is wrong, when the line is known.
					return yamlpos.InFile(inputName(f), fmt.Errorf("%s: %w", f, err))
				}
				all = append(all, rs...)
			}
			if len(all) == 0 {
				return errors.New("the input holds no resources")
			}
			// Fail at once when --api-url is not a control plane; a resource
			// for the other plane fails on its own, and the rest apply.
			if _, err := c.identify(cmd.Context()); err != nil {
				return err
			}
			failed := 0
			for _, r := range all {
				d, err := resource.Types.Get(r.Meta.Type)
				if err != nil {
					return err
				}
				if d.Scope == resource.ScopeMesh && r.Meta.Mesh == "" {
					r.Meta.Mesh = resource.DefaultMesh
				}
				body, err := resource.EncodeJSON(r)
				if err != nil {
					return err
				}
				if plane, what := writePlane(d); plane != "" {
					if err := c.need(cmd.Context(), plane, what); err != nil {
						failed++
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", describe(r), err)
						continue
					}
				}
				_, status, err := c.do(cmd.Context(), http.MethodPut, resourcePath(d, r.Meta.Mesh, r.Meta.Name), body)
				if err != nil {
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", describe(r), err)
					continue
				}
				// The API says created, updated or unchanged; one that
				// does not is answered by the status alone.
				verb := c.outcome
				if verb == "" {
					verb = "updated"
					if status == http.StatusCreated {
						verb = "created"
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", describe(r), verb)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d resources were not applied", failed, len(all))
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "file", "f", nil, "file to apply, or - for standard input (repeatable)")
	return cmd
}

func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return data, nil
}

// inputName is how messages name an input given with -f.
func inputName(f string) string {
	if f == "-" {
		return "stdin"
	}
	return f
}

func describe(r *resource.Resource) string {
	if r.Meta.Mesh != "" {
		return fmt.Sprintf("%s %s (mesh %s)", r.Meta.Type, r.Meta.Name, r.Meta.Mesh)
	}
	return fmt.Sprintf("%s %s", r.Meta.Type, r.Meta.Name)
}

// typeArg resolves a type argument such as "dataplanes" or "dp".
func typeArg(arg string) (*resource.Descriptor, error) {
	if arg == "dp" || arg == "dps" {
		arg = "dataplanes"
	}
	d, ok := resource.Types.ByName(arg)
	if !ok {
		var names []string
		for _, d := range resource.Types.All() {
			names = append(names, d.Plural)
		}
		return nil, fmt.Errorf("unknown resource type %q: use one of %s, services, vips, proxies", arg, strings.Join(names, ", "))
	}
	return d, nil
}

func getCommand(c *client) *cobra.Command {
	var mesh, output string
	cmd := &cobra.Command{
		Use:   "get TYPE [NAME]",
		Short: "Show dataplanes, meshes, zones (global), services and proxies (zone), zoneingresses, vips",
		Example: `  atollctl get dataplanes
  atollctl get dataplane kong --mesh default -o yaml
  atollctl get zones                      # on the global: Online, Offline or Disabled, sync lag
  atollctl get services                   # on a zone: where each runs, reachable from here or why not
  atollctl get vips                       # each service's virtual IP
  atollctl get proxies                    # on a zone: connected proxies, in sync or not
  atollctl get zone-token-keys            # on the global: zone token signing keys`,
		Args: getArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "table", "json", "yaml":
			default:
				return fmt.Errorf("-o %q: use table, json or yaml", output)
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			if plane, what := getPlane(args[0]); plane != "" {
				if err := c.need(cmd.Context(), plane, what); err != nil {
					return err
				}
			}
			if path, table := viewPath(args[0], name, mesh); path != "" {
				if output == "yaml" && (args[0] == "zones" || args[0] == "zone") {
					// As Zone resources that apply takes back.
					return c.getView(cmd.Context(), cmd.OutOrStdout(), path, "table", zonesYAML)
				}
				return c.getView(cmd.Context(), cmd.OutOrStdout(), path, output, table)
			}
			d, err := typeArg(args[0])
			if err != nil {
				return err
			}
			var items []*resource.Resource
			if len(args) == 2 && d.Type == resource.ZoneIngressType && output == "table" {
				// A zone's summary is several records: show them all.
				if items, err = c.list(cmd.Context(), d, mesh); err != nil {
					return err
				}
				if items = ofZone(items, args[1]); len(items) > 0 {
					return printTable(cmd.OutOrStdout(), d, items)
				}
			}
			if len(args) == 2 {
				r, err := c.get(cmd.Context(), d, mesh, args[1])
				if err != nil {
					return err
				}
				items = []*resource.Resource{r}
			} else if items, err = c.list(cmd.Context(), d, mesh); err != nil {
				return err
			}
			if d.Type == resource.DataplaneType && output == "table" {
				return c.printDataplanes(cmd.Context(), cmd.OutOrStdout(), items)
			}
			return printResources(cmd.OutOrStdout(), d, items, output, len(args) == 2)
		},
	}
	cmd.Flags().StringVar(&mesh, "mesh", resource.DefaultMesh, "mesh of mesh-scoped resources")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml (YAML that apply -f takes back)")
	return cmd
}

func deleteCommand(c *client) *cobra.Command {
	var mesh string
	cmd := &cobra.Command{
		Use:     "delete TYPE NAME",
		Short:   "Delete a resource",
		Example: `  atollctl delete dataplane backend-1 --mesh default`,
		Args:    deleteArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := typeArg(args[0])
			if err != nil {
				return err
			}
			if plane, what := writePlane(d); plane != "" {
				if err := c.need(cmd.Context(), plane, what); err != nil {
					return err
				}
			}
			if _, _, err := c.do(cmd.Context(), http.MethodDelete, resourcePath(d, mesh, args[1]), nil); err != nil {
				return err
			}
			r := &resource.Resource{Meta: resource.Meta{Type: d.Type, Name: args[1]}}
			if d.Scope == resource.ScopeMesh {
				r.Meta.Mesh = mesh
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", describe(r))
			return nil
		},
	}
	cmd.Flags().StringVar(&mesh, "mesh", resource.DefaultMesh, "mesh of mesh-scoped resources")
	return cmd
}

// printResources writes items as a table, as JSON ({"total","items"} for a
// list), or as YAML documents that apply -f accepts.
func printResources(w io.Writer, d *resource.Descriptor, items []*resource.Resource, output string, single bool) error {
	switch output {
	case "json":
		var parts [][]byte
		for _, r := range items {
			js, err := resource.EncodeJSON(r)
			if err != nil {
				return err
			}
			parts = append(parts, js)
		}
		var raw []byte
		if single {
			raw = parts[0]
		} else {
			raw = []byte(fmt.Sprintf(`{"total":%d,"items":[%s]}`, len(parts), bytes.Join(parts, []byte(","))))
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, raw, "", "  "); err != nil {
			return err
		}
		pretty.WriteByte('\n')
		_, err := w.Write(pretty.Bytes())
		return err
	case "yaml":
		for i, r := range items {
			if i > 0 {
				fmt.Fprintln(w, "---")
			}
			y, err := resource.EncodeYAML(r)
			if err != nil {
				return err
			}
			w.Write(y)
		}
		return nil
	}
	return printTable(w, d, items)
}
