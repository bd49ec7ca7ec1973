package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"smimeproxy/crypto/ca"
)

// Duration is a time.Duration written as a string in the file: Go syntax
// ("30m", "1h30m", "90s") plus a leading whole number of days ("825d",
// "1d12h").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d the way ParseDuration reads it back.
func (d Duration) String() string {
	v := time.Duration(d)
	if v >= 24*time.Hour && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	out := v.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

// MarshalText writes d as ParseDuration reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads d as ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDuration reads a Duration: "30m", "5h", "825d", "1d12h".
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty duration; write e.g. \"30m\", \"5h\" or \"30d\"")
	}
	var days int64
	if i := strings.IndexByte(t, 'd'); i > 0 {
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("invalid duration %q: days must be a whole number up to 36500", s)
		}
		days, t = n, t[i+1:]
	}
	var rest time.Duration
	if t != "" {
		var err error
		rest, err = time.ParseDuration(t)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: write e.g. \"30m\", \"5h\" or \"30d\"", s)
		}
		if days > 0 && rest < 0 {
			return 0, fmt.Errorf("invalid duration %q: mixed signs", s)
		}
	} else if days == 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return Duration(time.Duration(days)*24*time.Hour + rest), nil
}

// Size is a number of bytes, written as an integer or as a string with a
// unit: "512KB", "50MB", "1GB" (powers of 1024, as in Dovecot and Postfix
// documentation; "KiB", "MiB", "GiB" and "K", "M", "G" are the same).
type Size int64

// Size units.
const (
	KB Size = 1 << 10
	MB Size = 1 << 20
	GB Size = 1 << 30
)

// String formats s with the largest unit that divides it.
func (s Size) String() string {
	switch {
	case s != 0 && s%GB == 0:
		return strconv.FormatInt(int64(s/GB), 10) + "GB"
	case s != 0 && s%MB == 0:
		return strconv.FormatInt(int64(s/MB), 10) + "MB"
	case s != 0 && s%KB == 0:
		return strconv.FormatInt(int64(s/KB), 10) + "KB"
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalText writes s as ParseSize reads it.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads s as ParseSize does.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSize reads a Size from a string such as "50MB" or "1048576".
func ParseSize(str string) (Size, error) {
	t := strings.TrimSpace(str)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: write e.g. \"50MB\", \"512KB\" or a number of bytes", str)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: too large", str)
	}
	var unit Size
	switch strings.ToUpper(strings.TrimSpace(t[i:])) {
	case "", "B":
		unit = 1
	case "K", "KB", "KIB":
		unit = KB
	case "M", "MB", "MIB":
		unit = MB
	case "G", "GB", "GIB":
		unit = GB
	default:
		return 0, fmt.Errorf("invalid size %q: unit must be B, KB, MB or GB", str)
	}
	if n > int64(1<<62)/int64(unit) {
		return 0, fmt.Errorf("invalid size %q: too large", str)
	}
	return Size(n) * unit, nil
}

// TLSMode says how a listener or an upstream connection uses TLS.
type TLSMode string

// TLS modes.
const (
	TLSStartTLS TLSMode = "starttls" // plaintext greeting, then STARTTLS (required before login)
	TLSImplicit TLSMode = "implicit" // TLS from the first byte
	TLSNone     TLSMode = "none"     // no TLS; loopback addresses only
)

// StoreDriver selects the Store implementation.
type StoreDriver string

// Store drivers.
const (
	DriverSQLite   StoreDriver = "sqlite"
	DriverPostgres StoreDriver = "postgres"
)

// KeyType is the public-key algorithm of keys the built-in CA generates:
// the CA's own type, so the configuration offers exactly what it makes.
type KeyType = ca.KeyType

// Key types (ca.KeyTypes lists them all).
const (
	KeyRSA2048 = ca.KeyRSA2048
	KeyRSA3072 = ca.KeyRSA3072
	KeyP256    = ca.KeyP256
	KeyP384    = ca.KeyP384
)

// LogLevel is the lowest level of log lines written.
type LogLevel string

// Log levels.
const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// Slog returns the slog.Level for l (info for unknown values).
func (l LogLevel) Slog() slog.Level {
	switch l {
	case LogDebug:
		return slog.LevelDebug
	case LogWarn:
		return slog.LevelWarn
	case LogError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// LogFormat is the encoding of log lines.
type LogFormat string

// Log formats.
const (
	LogText LogFormat = "text" // slog.TextHandler
	LogJSON LogFormat = "json" // slog.JSONHandler
)

// TLSVersion is a minimum TLS protocol version, "1.2" or "1.3".
type TLSVersion string

// TLS versions.
const (
	TLS12 TLSVersion = "1.2"
	TLS13 TLSVersion = "1.3"
)

// Uint16 returns the crypto/tls constant for v (TLS 1.2 for unknown values).
func (v TLSVersion) Uint16() uint16 {
	if v == TLS13 {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// oneOf reports whether v is among allowed, and the allowed list for messages.
func oneOf[T ~string](v T, allowed ...T) (bool, string) {
	names := make([]string, len(allowed))
	ok := false
	for i, a := range allowed {
		names[i] = string(a)
		ok = ok || v == a
	}
	return ok, strings.Join(names, ", ")
}
