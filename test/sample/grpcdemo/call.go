package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
)

// call makes n RPCs to target through the xDS server the bootstrap names
// and prints who answered each. It fails fast: it waits at most -wait for
// the xDS server to describe target, never for an endpoint, and prints
// each distinct failure once, with how many RPCs it failed.
func call(args []string) error {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	bootstrapFile := fs.String("bootstrap", "", "grpc-go xDS bootstrap (atollctl bootstrap dataplane NAME --kind proxyless)")
	n := fs.Int("n", 6, "number of RPCs")
	zone := fs.String("zone", "", "the zone whose xDS server the bootstrap names, for messages (default: the server's address)")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for the xDS server to describe the target")
	fs.Parse(args)
	if *bootstrapFile == "" || fs.NArg() != 1 || !strings.HasPrefix(fs.Arg(0), "xds:///") || *n < 1 || *wait <= 0 {
		usage()
	}
	target := fs.Arg(0)
	bootstrap, err := os.ReadFile(*bootstrapFile)
	if err != nil {
		return err
	}
	where := *zone
	if where == "" {
		where = "the zone of xDS server " + xdsServer(bootstrap)
	}
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return fmt.Errorf("%s: %w", *bootstrapFile, err)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		return err
	}
	defer conn.Close()
	service := serviceOf(target)
	if !described(conn, *wait) {
		// grpc-go waits 15 s before it calls a resource missing: the
		// server named nothing for target in time, so nothing serves it.
		fmt.Printf("%s: no endpoints for %s in %s: its xDS server described no route for %s within %s\n", target, service, where, strings.TrimPrefix(target, "xds:///"), *wait)
		fmt.Printf("0 of %d RPCs answered\n", *n)
		return errReported
	}
	if conn.GetState() == connectivity.Ready {
		// Round robin connects to every endpoint at once and picks among
		// those connected: the channel is ready with the first. A moment
		// lets the others connect, so the calls spread over all of them
		// (on a loaded machine the first few otherwise go to one).
		time.Sleep(200 * time.Millisecond)
	}
	client := testgrpc.NewTestServiceClient(conn)
	answered := map[string]int{}
	var failures []string // distinct, in order
	failedWith := map[string]int{}
	for range *n {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		cancel()
		if err != nil {
			msg := explain(err, service, where)
			if failedWith[msg] == 0 {
				failures = append(failures, msg)
			}
			failedWith[msg]++
			continue
		}
		answered[resp.GetHostname()]++
		fmt.Printf("%s: answered by %s\n", target, resp.GetHostname())
	}
	failed := 0
	for _, msg := range failures {
		fmt.Printf("%s: %s (%d of %d RPCs)\n", target, msg, failedWith[msg], *n)
		failed += failedWith[msg]
	}
	names := make([]string, 0, len(answered))
	for name := range answered {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) == 0 {
		fmt.Printf("0 of %d RPCs answered\n", *n)
	} else {
		fmt.Printf("%d of %d RPCs answered, by %s\n", *n-failed, *n, strings.Join(names, ", "))
	}
	if failed > 0 {
		return errReported
	}
	return nil
}

// described waits up to wait for the channel to leave IDLE and CONNECTING:
// READY or TRANSIENT_FAILURE mean the xDS server described the target
// (with endpoints or without); still connecting means it did not.
func described(conn *grpc.ClientConn, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn.Connect()
	for {
		s := conn.GetState()
		if s == connectivity.Ready || s == connectivity.TransientFailure {
			return true
		}
		if !conn.WaitForStateChange(ctx, s) {
			return false
		}
	}
}

// noEndpoints are grpc-go's words for an xDS configuration that leaves a
// target without a single endpoint.
var noEndpoints = []string{
	"all priorities are removed",
	"produced zero addresses",
	"no endpoints",
	"does not exist",
	"not found in received response",
	"no matched route",
}

// explain turns an RPC's error into one line: grpc-go's various ways of
// saying that the xDS configuration has no endpoint become "no endpoints
// for SERVICE in ZONE", with grpc-go's words after it.
func explain(err error, service, where string) string {
	st := status.Convert(err)
	msg := st.Message()
	if st.Code() == codes.Unavailable {
		lower := strings.ToLower(msg)
		for _, phrase := range noEndpoints {
			if strings.Contains(lower, phrase) {
				return fmt.Sprintf("no endpoints for %s in %s (grpc: %s)", service, where, msg)
			}
		}
	}
	return fmt.Sprintf("%s: %s", st.Code(), msg)
}

// serviceOf is the name part of xds:///NAME:PORT.
func serviceOf(target string) string {
	name := strings.TrimPrefix(target, "xds:///")
	if i := strings.LastIndex(name, ":"); i > 0 {
		name = name[:i]
	}
	return name
}

// xdsServer is the first server_uri of a bootstrap, for messages.
func xdsServer(bootstrap []byte) string {
	var b struct {
		Servers []struct {
			URI string `json:"server_uri"`
		} `json:"xds_servers"`
	}
	if json.Unmarshal(bootstrap, &b) != nil || len(b.Servers) == 0 {
		return "(unknown)"
	}
	return b.Servers[0].URI
}
