package yamlpos

import (
	"errors"
	"fmt"
	"testing"
)

func TestClosest(t *testing.T) {
	known := []string{"address", "advertisedAddress", "inbound", "gateway"}
	tests := []struct{ in, want string }{
		{"adress", "address"},
		{"Address", "address"},
		{"inbond", "inbound"},
		{"gatewy", "gateway"},
		{"inbuond", "inbound"},
		{"advertisedAdress", "advertisedAddress"},
		{"port", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := Closest(tt.in, known); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Line: 4, Path: "networking.adress", Msg: "unknown field"}
	if got, want := e.Error(), "line 4: networking.adress: unknown field"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	named := InFile("dp.yaml", fmt.Errorf("dp.yaml: document 2: %w", e))
	if got, want := named.Error(), "dp.yaml:4: networking.adress: unknown field"; got != want {
		t.Errorf("InFile = %q, want %q", got, want)
	}
	if e.File != "" {
		t.Error("InFile changed the error it was given")
	}
	other := errors.New("reading dp.yaml: no such file")
	if InFile("dp.yaml", other) != other {
		t.Error("InFile changed an error without a line")
	}
}

func TestSyntaxKeepsOtherErrors(t *testing.T) {
	err := errors.New("yaml: invalid leading UTF-8 octet")
	if got := Syntax([]byte("\xff"), err); got != err {
		t.Errorf("Syntax() = %v, want the error unchanged", got)
	}
}

func TestSyntaxLine(t *testing.T) {
	data := []byte("a:\n  b: 1\n  c:\n  - d: 1\n   e: 2\n")
	err := ParseAll(data)
	if err == nil {
		t.Fatal("ParseAll accepted a misindented key")
	}
	want := "line 5: not valid YAML: did not find expected key (check this line's indentation against the lines above it)"
	if got := Syntax(data, err).Error(); got != want {
		t.Errorf("Syntax() = %q (yaml.v3 said %q), want %q", got, err, want)
	}
}
