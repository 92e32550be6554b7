package config

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestListenTakenPort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	want := "xds.addr " + addr + ": address already in use; pick another port or stop the process using it"

	if _, err := Listen("xds.addr", addr); err == nil || err.Error() != want {
		t.Errorf("Listen on a taken port = %v, want %q", err, want)
	}
	if err := CheckFree("xds.addr", addr); err == nil || err.Error() != want {
		t.Errorf("CheckFree on a taken port = %v, want %q", err, want)
	}

	_, err = Listen("xds.addr", addr)
	wrapped := fmt.Errorf("zone: %w", err)
	got := NameFlags(wrapped, map[string]string{"xds.addr": "xds-addr"})
	if want := "--xds-addr " + addr + ": address already in use; pick another port or stop the process using it"; got.Error() != want {
		t.Errorf("NameFlags = %q, want %q", got, want)
	}
	var be *BindError
	if !errors.As(got, &be) {
		t.Errorf("NameFlags lost the *BindError: %v", got)
	}
	plain := errors.New("dataDir: cannot create /x")
	if got := NameFlags(plain, nil); got != plain {
		t.Errorf("NameFlags changed an error that is not a BindError: %v", got)
	}
	if NameFlags(nil, nil) != nil {
		t.Error("NameFlags(nil) is not nil")
	}
}

func TestBindErrorHints(t *testing.T) {
	tests := []struct {
		name string
		err  *BindError
		want string
	}{
		{"not an address of this machine", &BindError{Setting: "--api-addr", Addr: "192.0.2.1:5681",
			Err: &net.OpError{Op: "listen", Net: "tcp", Err: errors.New("bind: cannot assign requested address")}},
			"--api-addr 192.0.2.1:5681: bind: cannot assign requested address"},
		{"with its network", &BindError{Setting: "--dns-addr", Addr: ":5653", Network: "udp", Err: errors.New("boom")},
			"--dns-addr :5653 (udp): boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
	// A real address this machine does not have.
	_, err := Listen("--api-addr", "192.0.2.1:0")
	if want := "--api-addr 192.0.2.1:0: cannot assign the address: it is not an address of this machine; use one of its addresses, or leave the host empty to listen on all"; err == nil || err.Error() != want {
		t.Errorf("Listen on a foreign address = %v, want %q", err, want)
	}
}
