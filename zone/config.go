package zone

import (
	_ "embed"
	"errors"
	"fmt"

	"github.com/atoll-mesh/atoll/internal/config"
	"github.com/atoll-mesh/atoll/internal/logging"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// Modes a zone can run in.
const (
	ModeUniversal  = "universal"
	ModeKubernetes = "kubernetes"
)

// Config is a zone control plane's configuration.
type Config struct {
	// Zone is this zone's name, unique across the mesh.
	Zone string `yaml:"zone" json:"zone"`
	// Mode is universal (Dataplanes registered through the API) or
	// kubernetes (discovered from Pods).
	Mode string `yaml:"mode" json:"mode"`
	// APIAddr is the REST API listener (also /healthz, /readyz, /metrics).
	APIAddr string `yaml:"apiAddr" json:"apiAddr"`
	// DataDir holds the zone's local state.
	DataDir string `yaml:"dataDir" json:"dataDir"`
	// GlobalAddress is the global's KDS address, grpcs://HOST:PORT. Empty
	// runs the zone on its own.
	GlobalAddress string         `yaml:"globalAddress" json:"globalAddress"`
	Log           logging.Config `yaml:"log" json:"log"`
}

// DefaultYAML is Default() as YAML, shipped as a reference.
//
//go:embed defaults.yaml
var DefaultYAML []byte

// Default returns the built-in defaults. Zone has no default: every zone
// must be named.
func Default() Config {
	return Config{
		Mode:    ModeUniversal,
		APIAddr: ":5681",
		DataDir: "/var/lib/atoll/zone",
		Log:     logging.Default(),
	}
}

// Validate returns every bad setting, each named as in the config file.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if msg := resource.CheckName(c.Zone); msg != "" {
		add(fmt.Errorf("zone: %s (name this zone with --zone, e.g. --zone zone-1)", msg))
	}
	switch c.Mode {
	case ModeUniversal:
	case ModeKubernetes:
		add(errors.New("mode: kubernetes is not supported yet: use --mode universal and register Dataplanes through the API"))
	default:
		add(fmt.Errorf("mode: %q is not a mode: use universal (or kubernetes, once supported)", c.Mode))
	}
	add(config.CheckListenAddr("apiAddr", c.APIAddr))
	if c.DataDir == "" {
		add(errors.New("dataDir: is required: name a directory for the zone's state"))
	}
	if c.GlobalAddress != "" {
		add(config.CheckURL("globalAddress", c.GlobalAddress, "grpcs", "grpc"))
	}
	add(c.Log.Validate("log"))
	return errors.Join(errs...)
}
