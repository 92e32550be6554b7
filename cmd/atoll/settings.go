package main

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/atoll-mesh/atoll/internal/yamlpos"
)

// setting ties one flag to one config key and one ATOLL_* variable.
type setting struct {
	flag  string // e.g. "api-addr"
	key   string // e.g. "apiAddr", "etcd.endpoints"
	usage string
}

// envName is the environment variable of a flag: --api-addr → ATOLL_API_ADDR.
func envName(flag string) string {
	return "ATOLL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// flagsByKey maps each setting's config key to its flag.
func flagsByKey(settings []setting) map[string]string {
	m := make(map[string]string, len(settings))
	for _, s := range settings {
		m[s.key] = s.flag
	}
	return m
}

// bindSettings adds a flag per setting (default from defaults, a struct
// whose fields are tagged yaml) and the common --config and --print-config.
func bindSettings(cmd *cobra.Command, defaults any, settings []setting) {
	bindSettingsEnv(cmd, defaults, settings, envName)
}

// bindSettingsEnv is bindSettings for a command whose variables are named
// by env rather than envName.
func bindSettingsEnv(cmd *cobra.Command, defaults any, settings []setting, env func(flag string) string) {
	fs := cmd.Flags()
	fs.String("config", "", "YAML configuration file (settings as in --print-config)")
	fs.Bool("print-config", false, "print the effective configuration as YAML and exit")
	for _, s := range settings {
		usage := fmt.Sprintf("%s (config %s, env %s)", s.usage, s.key, env(s.flag))
		switch v := lookup(defaults, s.key).(type) {
		case string:
			fs.String(s.flag, v, usage)
		case []string:
			fs.StringSlice(s.flag, v, usage)
		case time.Duration:
			fs.Duration(s.flag, v, usage)
		case bool:
			fs.Bool(s.flag, v, usage)
		case int:
			fs.Int(s.flag, v, usage)
		default:
			panic(fmt.Sprintf("setting %s has unsupported type %T", s.key, v))
		}
	}
}

// load builds the effective configuration: defaults, then the --config
// file, then ATOLL_* variables, then flags. Unknown keys in the file are
// errors naming them.
func load(cmd *cobra.Command, cfg any, settings []setting) error {
	return loadEnv(cmd, cfg, settings, envName)
}

// loadEnv is load for a command whose variables are named by env.
func loadEnv(cmd *cobra.Command, cfg any, settings []setting, env func(flag string) string) error {
	v := viper.New()
	defaults, err := toMap(cfg)
	if err != nil {
		return err
	}
	for k, val := range flatten("", defaults) {
		v.SetDefault(k, val)
	}
	for _, s := range settings {
		if err := v.BindPFlag(s.key, cmd.Flags().Lookup(s.flag)); err != nil {
			return err
		}
		if err := v.BindEnv(s.key, env(s.flag)); err != nil {
			return err
		}
	}
	if path, _ := cmd.Flags().GetString("config"); path != "" {
		if err := checkConfigFile(path, defaults); err != nil {
			return err
		}
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("--config %s: %w", path, err)
		}
	}
	err = v.UnmarshalExact(cfg, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "yaml"
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "has invalid keys: "); i >= 0 {
			return fmt.Errorf("configuration: unknown setting(s) %s: run with --print-config to see the settings", strings.TrimSpace(msg[i+len("has invalid keys: "):]))
		}
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// checkConfigFile reports a syntax error or an unknown key in the --config
// file at its line, with the setting most likely meant; defaults are the
// settings as nested maps. Keys are matched regardless of case, as viper
// reads them.
func checkConfigFile(path string, defaults map[string]any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return yamlpos.InFile(path, yamlpos.Syntax(data, err))
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return yamlpos.InFile(path, checkKeys(doc.Content[0], defaults, ""))
}

func checkKeys(n *yaml.Node, known map[string]any, prefix string) error {
	if n.Kind != yaml.MappingNode {
		return nil // a value of the wrong kind is named by viper
	}
	names := slices.Sorted(maps.Keys(known))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		name := ""
		for _, candidate := range names {
			if strings.EqualFold(candidate, k.Value) {
				name = candidate
				break
			}
		}
		if name == "" {
			e := yamlpos.UnknownField(k.Line, prefix+k.Value, k.Value, names)
			e.Msg += " (run with --print-config to see every setting)"
			return e
		}
		if sub, ok := known[name].(map[string]any); ok && len(sub) > 0 {
			if err := checkKeys(n.Content[i+1], sub, prefix+name+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// printConfig writes cfg as YAML when --print-config is set and says so.
func printConfig(cmd *cobra.Command, cfg any) (bool, error) {
	if ok, _ := cmd.Flags().GetBool("print-config"); !ok {
		return false, nil
	}
	enc := yaml.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return true, err
	}
	return true, enc.Close()
}

// toMap turns a yaml-tagged struct into nested maps, keys as in YAML.
func toMap(cfg any) (map[string]any, error) {
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	return m, yaml.Unmarshal(data, &m)
}

func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			for kk, vv := range flatten(key, sub) {
				out[kk] = vv
			}
			continue
		}
		out[key] = v
	}
	return out
}

// lookup returns the field of struct cfg at a dotted yaml key.
func lookup(cfg any, key string) any {
	v := reflect.ValueOf(cfg)
	for _, part := range strings.Split(key, ".") {
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		found := false
		for i := 0; i < v.NumField(); i++ {
			tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
			if tag == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			panic("no config field for key " + key)
		}
	}
	return v.Interface()
}
