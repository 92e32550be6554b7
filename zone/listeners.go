package zone

import (
	"errors"
	"net"

	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/internal/config"
)

// listeners are the zone's sockets, bound before anything starts so that a
// taken port is reported, naming its setting, before the zone says it
// started.
type listeners struct {
	api      net.Listener
	xds      net.Listener // nil when xDS is disabled
	dns      *dns.Sockets // nil when DNS is disabled
	injector net.Listener // nil unless kubernetes mode serves the injector
}

// bindListeners binds every listener cfg asks for, or none.
func bindListeners(cfg Config) (_ *listeners, err error) {
	l := &listeners{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.api, err = config.Listen("apiAddr", cfg.APIAddr); err != nil {
		return nil, err
	}
	if cfg.XDS.Addr != "" {
		if l.xds, err = config.Listen("xds.addr", cfg.XDS.Addr); err != nil {
			return nil, err
		}
	}
	if cfg.DNS.Addr != "" {
		if l.dns, err = dns.Listen(cfg.DNS.Addr); err != nil {
			var le *dns.ListenError
			if errors.As(err, &le) {
				return nil, &config.BindError{Setting: "dns.addr", Addr: le.Addr, Network: le.Network, Err: le.Err}
			}
			return nil, err
		}
	}
	if cfg.Mode == ModeKubernetes && cfg.Kubernetes.Injector.Addr != "" {
		if l.injector, err = config.Listen("kubernetes.injector.addr", cfg.Kubernetes.Injector.Addr); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// close releases the sockets; the servers given them close them too when
// they stop, which is harmless.
func (l *listeners) close() {
	for _, ln := range []net.Listener{l.api, l.xds, l.injector} {
		if ln != nil {
			ln.Close()
		}
	}
	if l.dns != nil {
		l.dns.Close()
	}
}
