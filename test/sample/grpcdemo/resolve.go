package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"
)

// resolve asks a DNS server for a name's addresses, as a gateway's
// resolver would: the query dig answers, for machines without dig.
func resolve(args []string) error {
	fs := flag.NewFlagSet("resolve", flag.ExitOnError)
	server := fs.String("server", "127.0.0.1:5653", "the DNS server, HOST:PORT (zone-1's in make run)")
	tcp := fs.Bool("tcp", false, "ask over TCP instead of UDP")
	fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	if _, _, err := net.SplitHostPort(*server); err != nil {
		return fmt.Errorf("-server %q: %w: give HOST:PORT, e.g. 127.0.0.1:5653", *server, err)
	}
	network := "udp"
	if *tcp {
		network = "tcp"
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, *server)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name := fs.Arg(0)
	addrs, err := r.LookupHost(ctx, name)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		fmt.Printf("%s: no such name (NXDOMAIN from %s)\n", name, *server)
		return errReported
	case err != nil:
		return fmt.Errorf("asking %s over %s: %w", *server, network, err)
	}
	fmt.Printf("%s: %s\n", name, strings.Join(addrs, " "))
	return nil
}
