package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// zoneStatus is what a zone's GET /zone answers.
type zoneStatus struct {
	Zone             string `json:"zone"`
	GlobalAddress    string `json:"globalAddress"`
	Connected        bool   `json:"connected"`
	ConnectedTo      string `json:"connectedTo"`
	Since            string `json:"since"`
	LastError        string `json:"lastError"`
	SyncLagMs        int64  `json:"syncLagMs"`
	GlobalClusterID  string `json:"globalClusterId"`
	RefusedClusterID string `json:"refusedClusterId"`
	GlobalProblem    string `json:"globalProblem"`
}

func statusCommand(c *client) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a zone's sync with its global: connection, lag, the global's cluster identity",
		Example: `  atollctl --api-url http://127.0.0.1:5691 status
  atollctl --api-url http://127.0.0.1:5691 status -o json`,
		Args: noArgs("atollctl status takes no arguments; ask a zone's API with --api-url"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "table", "json", "yaml":
			default:
				return fmt.Errorf("-o %q: use table, json or yaml", output)
			}
			if err := c.need(cmd.Context(), planeZone, "status shows a zone's sync with its global"); err != nil {
				return err
			}
			return c.getView(cmd.Context(), cmd.OutOrStdout(), "/zone", output, zoneStatusText)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func zoneStatusText(w io.Writer, data []byte) error {
	var st zoneStatus
	if err := json.Unmarshal(data, &st); err != nil || st.Zone == "" {
		return fmt.Errorf("the API answered with something that is not a zone's status (is --api-url a zone's API?)")
	}
	fmt.Fprintf(w, "Zone:            %s\n", st.Zone)
	if st.GlobalAddress == "" {
		_, err := fmt.Fprintln(w, "Global:          none (the zone runs on its own)")
		return err
	}
	state := "disconnected"
	if st.Connected {
		state = "connected"
		if st.ConnectedTo != "" && strings.Contains(st.GlobalAddress, ",") {
			state += " to " + st.ConnectedTo
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, st.Since); err == nil {
		state += " for " + age(time.Now(), t)
	}
	fmt.Fprintf(w, "Global:          %s (%s)\n", st.GlobalAddress, state)
	if st.Connected {
		fmt.Fprintf(w, "Sync lag:        %s\n", time.Duration(st.SyncLagMs)*time.Millisecond)
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "Last error:      %s\n", st.LastError)
	}
	id := st.GlobalClusterID
	if id == "" {
		id = "not synced yet"
	}
	fmt.Fprintf(w, "Global identity: %s\n", id)
	if st.GlobalProblem != "" {
		fmt.Fprintf(w, "REFUSING:        %s\n", st.GlobalProblem)
	}
	return nil
}

func acceptGlobalCommand(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "accept-global CLUSTER_ID",
		Short: "Let a zone adopt a global with a new cluster identity and apply its state",
		Long: `A zone remembers the cluster identity of the global it syncs with. When it
meets a global with another identity (one started on an empty or wrong etcd,
or etcd prefix) it keeps its meshes, VIP tables and other zones' services and
refuses their removal. If that global is the right one, accept it: the zone
then reconnects and applies the global's state, removals included.
CLUSTER_ID is the identity "atollctl status" shows as refused.`,
		Example: `  atollctl --api-url http://127.0.0.1:5691 accept-global 0d5c1c9e-5b7a-4f9e-8d3a-2f0c9a4e7b61`,
		Args:    oneArg("the cluster identity to accept", "atollctl accept-global CLUSTER_ID (atollctl status shows the one refused)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.need(cmd.Context(), planeZone, "accept-global is a zone's decision"); err != nil {
				return err
			}
			body, err := json.Marshal(map[string]string{"clusterId": args[0]})
			if err != nil {
				return err
			}
			if _, _, err := c.do(cmd.Context(), http.MethodPost, "/zone/accept-global", body); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "accepted the global with cluster identity %s: the zone reconnects and applies its state\n", args[0])
			return err
		},
	}
}
