// Package logging builds the process logger from configuration.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Config selects the log level and format.
type Config struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level" json:"level"`
	// Format is text or json.
	Format string `yaml:"format" json:"format"`
}

// Default logs info and above as text.
func Default() Config { return Config{Level: "info", Format: "text"} }

// Validate names the bad setting under prefix (e.g. "log").
func (c Config) Validate(prefix string) error {
	if _, err := parseLevel(c.Level); err != nil {
		return fmt.Errorf("%s.level: %w", prefix, err)
	}
	switch c.Format {
	case "text", "json":
	default:
		return fmt.Errorf("%s.format: %q is not supported: use text or json", prefix, c.Format)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not a level: use debug, info, warn or error", s)
}

// New returns a logger writing to w. Call Validate first; a bad level
// falls back to info.
func New(c Config, w io.Writer) *slog.Logger {
	level, err := parseLevel(c.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
