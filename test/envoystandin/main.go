// Command envoystandin stands in for Envoy in atoll's tests: this machine
// has no Envoy binary (it is not in Debian, the Go module proxy or npm), so
// tests of `atoll sidecar` run this program as the sidecar's "Envoy".
//
// It takes Envoy's command line, `-c <bootstrap.json> --log-level L`
// (also --config-path and -l; every other Envoy flag is ignored), reads the
// bootstrap as Envoy would (protojson of envoy.config.bootstrap.v3), dials
// the endpoint of the static cluster atoll-xds (a Unix socket "pipe" or a
// socket address) and runs one delta ADS stream as the bootstrap's node,
// subscribing to every Cluster (CDS) and Listener (LDS). It binds the
// listeners with use_original_dst and reports the connections they accept
// (listeners.go). Each response is ACKed and printed to stdout as one JSON
// line:
//
//	{"event":"started","node":"default.kong-…","cluster":"default","xds":"unix:///run/atoll/xds.sock","log_level":"info"}
//	{"event":"response","type_url":"type.googleapis.com/envoy.config.cluster.v3.Cluster","resources":["backend"],"removed":null,"nonce":"1"}
//	{"event":"stream_error","code":"PermissionDenied","error":"…"}
//
// A stream that ends is reported as stream_error and opened again after a
// short backoff, as Envoy does. SIGTERM or SIGINT ends the program with
// status 0; a bad command line or bootstrap with status 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	// Types the bootstrap's Any fields may hold.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// xdsCluster is the bootstrap's static cluster of the xDS server
// (zone/xds.XDSClusterName; not imported, to keep this program small).
const xdsCluster = "atoll-xds"

// line is one line of output.
type line struct {
	Event     string   `json:"event"`
	Node      string   `json:"node,omitempty"`
	Cluster   string   `json:"cluster,omitempty"`
	XDS       string   `json:"xds,omitempty"`
	LogLevel  string   `json:"log_level,omitempty"`
	TypeURL   string   `json:"type_url,omitempty"`
	Resources []string `json:"resources,omitempty"`
	Removed   []string `json:"removed,omitempty"`
	Nonce     string   `json:"nonce,omitempty"`
	Code      string   `json:"code,omitempty"`
	Error     string   `json:"error,omitempty"`
	// Listeners (listeners.go).
	Listener    string `json:"listener,omitempty"`
	Address     string `json:"address,omitempty"`
	OriginalDst string `json:"original_dst,omitempty"`
	HandedTo    string `json:"handed_to,omitempty"`
	ToCluster   string `json:"to_cluster,omitempty"`
}

var (
	outMu sync.Mutex
	enc   = json.NewEncoder(os.Stdout)
)

func emit(l line) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = enc.Encode(l)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "envoystandin:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	path, level, err := parseArgs(args)
	if err != nil {
		return err
	}
	b, err := readBootstrap(path)
	if err != nil {
		return err
	}
	target, err := xdsTarget(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("xDS client for %s: %w", target, err)
	}
	defer conn.Close()
	emit(line{Event: "started", Node: b.GetNode().GetId(), Cluster: b.GetNode().GetCluster(), XDS: target, LogLevel: level})
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	backoff := 100 * time.Millisecond
	ls := newListeners()
	ls.static(b.GetStaticResources().GetListeners())
	for {
		err := stream(ctx, client, b.GetNode(), ls)
		if ctx.Err() != nil {
			return nil
		}
		emit(line{Event: "stream_error", Code: status.Code(err).String(), Error: err.Error()})
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// parseArgs picks the bootstrap path and log level out of Envoy's command
// line, ignoring every other flag.
func parseArgs(args []string) (path, level string, err error) {
	level = "info"
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		var dst *string
		switch name {
		case "-c", "--config-path":
			dst = &path
		case "-l", "--log-level":
			dst = &level
		default:
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return "", "", fmt.Errorf("%s needs a value", name)
			}
			i++
			value = args[i]
		}
		*dst = value
	}
	if path == "" {
		return "", "", errors.New("no bootstrap: run with -c <bootstrap.json>")
	}
	return path, level, nil
}

func readBootstrap(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the bootstrap: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("bootstrap %s: %w", path, err)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap %s is invalid: %w", path, err)
	}
	return &b, nil
}

// xdsTarget is the gRPC target of the atoll-xds cluster's one endpoint.
func xdsTarget(b *bootstrapv3.Bootstrap) (string, error) {
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != xdsCluster {
			continue
		}
		if c.GetTransportSocket() != nil {
			return "", fmt.Errorf("cluster %s uses TLS, which the stand-in does not speak", xdsCluster)
		}
		for _, lle := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range lle.GetLbEndpoints() {
				a := lb.GetEndpoint().GetAddress()
				if p := a.GetPipe().GetPath(); p != "" {
					return "unix://" + p, nil
				}
				if sa := a.GetSocketAddress(); sa != nil {
					return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), nil
				}
			}
		}
		return "", fmt.Errorf("cluster %s has no endpoint", xdsCluster)
	}
	return "", fmt.Errorf("no static cluster %s", xdsCluster)
}

// stream runs one delta ADS stream: subscribes to every Cluster and
// Listener, then prints and ACKs responses until the stream or ctx ends.
func stream(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient, node *corev3.Node, ls *listeners) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := client.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	// Node on the first request only (set_node_on_first_message_only).
	for i, typeURL := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL}
		if i == 0 {
			req.Node = node
		}
		if err := s.Send(req); err != nil {
			return recvErr(s, err)
		}
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		names := make([]string, 0, len(resp.GetResources()))
		for _, r := range resp.GetResources() {
			names = append(names, r.GetName())
		}
		emit(line{Event: "response", TypeURL: resp.GetTypeUrl(), Resources: names, Removed: resp.GetRemovedResources(), Nonce: resp.GetNonce()})
		ls.apply(resp)
		ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		if err := s.Send(ack); err != nil {
			return recvErr(s, err)
		}
	}
}

// recvErr is the stream's status after a failed Send (Send returns io.EOF
// when the server has ended the stream; Recv has the reason).
func recvErr(s grpc.BidiStreamingClient[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse], err error) error {
	if errors.Is(err, io.EOF) {
		for {
			if _, rerr := s.Recv(); rerr != nil {
				return rerr
			}
		}
	}
	return err
}
