package config

import (
	"context"
	"errors"
	"net"
	"syscall"
)

// BindError is a listener that could not be bound, named by the setting
// that asked for it. A control plane's command renames Setting to the flag
// the user typed (--xds-addr) before printing it.
type BindError struct {
	// Setting names the listener, as in the config file (xds.addr) or as
	// a flag (--xds-addr).
	Setting string
	// Addr is the address as configured.
	Addr string
	// Network is "udp" or "tcp" for a setting that binds both; empty
	// otherwise.
	Network string
	Err     error
}

func (e *BindError) Error() string {
	name := e.Setting + " " + e.Addr
	if e.Network != "" {
		name += " (" + e.Network + ")"
	}
	return name + ": " + bindHint(e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// bindHint says what went wrong binding and what to do about it.
func bindHint(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "address already in use; pick another port or stop the process using it"
	case errors.Is(err, syscall.EACCES):
		return "permission denied; pick a port above 1023, or give the process the right to bind low ports (CAP_NET_BIND_SERVICE)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "cannot assign the address: it is not an address of this machine; use one of its addresses, or leave the host empty to listen on all"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// Listen binds a TCP listener for setting, or returns a *BindError naming
// it.
func Listen(setting, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &BindError{Setting: setting, Addr: addr, Err: err}
	}
	return ln, nil
}

// CheckFree binds addr over TCP and releases it at once: for a listener a
// library binds itself (the embedded etcd), so that a taken port is
// reported with its setting before anything starts.
func CheckFree(setting, addr string) error {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
	if err != nil {
		return &BindError{Setting: setting, Addr: addr, Err: err}
	}
	return ln.Close()
}

// NameFlags returns the *BindError in err with its setting renamed to its
// flag, as flags maps settings (xds.addr) to flags (xds-addr): the
// address, the flag and the hint are all the user needs, so the context
// err wraps it in is dropped. Other errors are returned as they are.
func NameFlags(err error, flags map[string]string) error {
	var be *BindError
	if !errors.As(err, &be) {
		return err
	}
	renamed := *be
	if flag, ok := flags[be.Setting]; ok {
		renamed.Setting = "--" + flag
	}
	return &renamed
}
