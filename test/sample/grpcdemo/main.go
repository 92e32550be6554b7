// Command grpcdemo is the sample topology's data path, for make run: real
// gRPC backends that answer with their name, and a proxyless gRPC client
// that resolves xds:///NAME.mesh:PORT through a zone's xDS server, as a
// gateway would.
//
//	grpcdemo serve NAME HOST:PORT
//	grpcdemo call -bootstrap FILE [-n 6] xds:///backend.mesh:9001
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "call":
		err = call(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcdemo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: grpcdemo serve NAME HOST:PORT | grpcdemo call -bootstrap FILE [-n N] xds:///NAME.mesh:PORT")
	os.Exit(2)
}

type backend struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (b backend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: b.name}, nil
}

// serve answers every UnaryCall with name until SIGINT or SIGTERM.
func serve(args []string) error {
	if len(args) != 2 {
		usage()
	}
	ln, err := net.Listen("tcp", args[1])
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, backend{name: args[0]})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	fmt.Printf("%s serving on %s\n", args[0], ln.Addr())
	return srv.Serve(ln)
}

// call makes n RPCs to target through the xDS server the bootstrap names
// and prints who answered each.
func call(args []string) error {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	bootstrapFile := fs.String("bootstrap", "", "grpc-go xDS bootstrap (atollctl bootstrap dataplane NAME --kind proxyless)")
	n := fs.Int("n", 6, "number of RPCs")
	fs.Parse(args)
	if *bootstrapFile == "" || fs.NArg() != 1 || !strings.HasPrefix(fs.Arg(0), "xds:///") {
		usage()
	}
	bootstrap, err := os.ReadFile(*bootstrapFile)
	if err != nil {
		return err
	}
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		return fmt.Errorf("%s: %w", *bootstrapFile, err)
	}
	conn, err := grpc.NewClient(fs.Arg(0), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	answered := map[string]int{}
	failed := 0
	for range *n {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		cancel()
		if err != nil {
			fmt.Printf("%s: %s\n", fs.Arg(0), status.Convert(err).Message())
			failed++
			continue
		}
		answered[resp.GetHostname()]++
		fmt.Printf("%s: answered by %s\n", fs.Arg(0), resp.GetHostname())
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
		return fmt.Errorf("%d RPCs failed", failed)
	}
	return nil
}
