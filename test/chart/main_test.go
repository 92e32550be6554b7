package chart

import (
	"os"
	"testing"
)

// atoll is cmd/atoll, built once for the package's tests.
var atoll Binary

func TestMain(m *testing.M) {
	code := m.Run()
	atoll.Remove()
	os.Exit(code)
}
