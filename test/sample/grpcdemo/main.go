// Command grpcdemo is the sample topology's data path, for make run: real
// gRPC backends that answer with their name, and a proxyless gRPC client
// that resolves xds:///NAME.mesh:PORT through a zone's xDS server, as a
// gateway would, and a DNS lookup against a zone's DNS server for machines
// without dig.
//
//	grpcdemo serve NAME HOST:PORT
//	grpcdemo call -bootstrap FILE [-n 6] [-zone zone-1] [-wait 5s] xds:///backend.mesh:9001
//	grpcdemo resolve [-server 127.0.0.1:5653] [-tcp] backend.mesh
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
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
	case "resolve":
		err = resolve(os.Args[2:])
	default:
		usage()
	}
	if errors.Is(err, errReported) {
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcdemo:", err)
		os.Exit(1)
	}
}

// errReported is a failure already printed: exit 1 without more words.
var errReported = errors.New("reported")

func usage() {
	fmt.Fprintln(os.Stderr, "usage: grpcdemo serve NAME HOST:PORT | grpcdemo call -bootstrap FILE [-n N] [-zone NAME] [-wait DURATION] xds:///NAME.mesh:PORT | grpcdemo resolve [-server HOST:PORT] [-tcp] NAME")
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
