// Command coredns is CoreDNS, built from its Go module at the version
// go.mod pins, with only the plugins the DNS comparison benchmark
// configures (bind, errors, file). Which plugins are compiled in does not
// change how a configured one serves a query.
//
// Built by `make bench-dns` into bin/tools; a module of its own, so
// CoreDNS's dependencies stay out of atoll's.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
)

func main() { coremain.Run() }
