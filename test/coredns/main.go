// Command coredns is CoreDNS, built from its Go module at the version
// go.mod pins, with the plugins atoll's tests configure:
//
//   - the cluster DNS of the end-to-end suite (test/clusterdns): kubernetes,
//     forward, cache, errors, log, ready, health;
//   - the DNS comparison benchmark (test/dnsbench): bind, errors, file.
//
// Which plugins are compiled in does not change how a configured one serves
// a query; CoreDNS orders configured plugins by its own directive list, not
// by these imports.
//
// Built by `make coredns` into ~/.cache/atoll/tools, keyed by the CoreDNS
// version; a module of its own, so CoreDNS's dependencies stay out of
// atoll's.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
