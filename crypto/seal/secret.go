package seal

import (
	"fmt"
	"io"
	"log/slog"
)

// Secret is a password (or other secret text) that must never reach a log
// line, an error text or a reply: every printing path shows "***".
type Secret string

// String hides the value.
func (Secret) String() string { return "***" }

// GoString hides the value from %#v.
func (Secret) GoString() string { return `"***"` }

// Format hides the value from every fmt verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, "***") }

// LogValue hides the value from log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("***") }

// MarshalText hides the value from encoders (JSON, TOML) so a struct holding
// a Secret cannot leak it by being serialised.
func (Secret) MarshalText() ([]byte, error) { return []byte("***"), nil }
