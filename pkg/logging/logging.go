// Package logging builds the daemons' log/slog logger from config.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a text or JSON logger at the named level (Salt's names:
// debug, info, warning, error; "warn" too).
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		lv = slog.LevelInfo
	case "debug", "trace", "all":
		lv = slog.LevelDebug
	case "warning", "warn":
		lv = slog.LevelWarn
	case "error", "critical", "quiet":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log_level %q: want debug, info, warning or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log_format %q: want text or json", format)
}
