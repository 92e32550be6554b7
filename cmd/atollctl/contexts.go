package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/atoll-mesh/atoll/internal/atomicfile"
)

// The config file holds contexts, like kubectl's kubeconfig: named API
// URLs with the CA and token files that go with them, and the current one.

// configEnv names the config file instead of the user's config directory.
const configEnv = "ATOLLCTL_CONFIG"

// apiContext is one named control plane API.
type apiContext struct {
	Name         string `yaml:"name"`
	APIURL       string `yaml:"apiUrl"`
	APICAFile    string `yaml:"apiCaFile,omitempty"`
	APITokenFile string `yaml:"apiTokenFile,omitempty"`
}

// ctlConfig is the config file.
type ctlConfig struct {
	CurrentContext string       `yaml:"currentContext,omitempty"`
	Contexts       []apiContext `yaml:"contexts"`
}

// configPath is where the config file is: $ATOLLCTL_CONFIG, else
// atoll/config.yaml in the user's config directory.
func configPath(getenv func(string) string) (string, error) {
	if p := getenv(configEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the user's config directory for atollctl's contexts (%w): set %s to a file path", err, configEnv)
	}
	return filepath.Join(dir, "atoll", "config.yaml"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string) (*ctlConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &ctlConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading atollctl's config: %w", err)
	}
	cfg := &ctlConfig{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("atollctl's config %s: %w: fix it, or delete it and set the contexts again (atollctl config set-context)", path, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("atollctl's config %s: %w", path, err)
	}
	return cfg, nil
}

// save writes the config file, readable by the user only (its contexts
// name token files).
func (cfg *ctlConfig) save(path string) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the directory of atollctl's config: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("saving atollctl's config: %w", err)
	}
	return nil
}

// validate checks what a hand-edited file may get wrong.
func (cfg *ctlConfig) validate() error {
	seen := map[string]bool{}
	for i, c := range cfg.Contexts {
		if err := checkContextName(c.Name); err != nil {
			return fmt.Errorf("contexts[%d]: %w", i, err)
		}
		if seen[c.Name] {
			return fmt.Errorf("contexts[%d]: context %q is defined twice: keep one", i, c.Name)
		}
		seen[c.Name] = true
		if _, hint, err := normalizeURL(c.APIURL, fmt.Sprintf("context %q apiUrl", c.Name)); err != nil || hint != "" {
			if err == nil {
				err = fmt.Errorf("context %q apiUrl %q has no scheme: write http:// or https:// before it", c.Name, c.APIURL)
			}
			return fmt.Errorf("contexts[%d]: %w", i, err)
		}
	}
	if cfg.CurrentContext != "" && !seen[cfg.CurrentContext] {
		return fmt.Errorf("currentContext %q is not among the contexts: atollctl config use-context NAME with one of atollctl config get-contexts", cfg.CurrentContext)
	}
	return nil
}

// find returns the context named name, or nil.
func (cfg *ctlConfig) find(name string) *apiContext {
	for i := range cfg.Contexts {
		if cfg.Contexts[i].Name == name {
			return &cfg.Contexts[i]
		}
	}
	return nil
}

// names lists the contexts' names, for messages.
func (cfg *ctlConfig) names() []string {
	var out []string
	for _, c := range cfg.Contexts {
		out = append(out, c.Name)
	}
	return out
}

var contextName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func checkContextName(name string) error {
	if !contextName.MatchString(name) {
		return fmt.Errorf("context name %q is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters (e.g. zone-1)", name)
	}
	return nil
}
