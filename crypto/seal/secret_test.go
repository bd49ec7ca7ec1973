package seal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const pw = "hunter2-very-secret"
	s := Secret(pw)
	mk, _ := MasterKeyFromBytes(bytes.Repeat([]byte("K"), MasterKeySize))
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10s"} {
		fmt.Fprintf(&out, verb+"|", s)
		fmt.Fprintf(&out, verb+"|", mk)
	}
	fmt.Fprint(&out, s, mk, struct{ P Secret }{s})
	fmt.Fprintf(&out, "%+v", struct {
		P Secret
		M *MasterKey
	}{s, mk})
	j, err := json.Marshal(struct{ Password Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("unlock", "password", s, "key", mk)
	slog.New(slog.NewTextHandler(&out, nil)).Info("unlock", "password", s, "key", mk)
	got := out.String()
	if strings.Contains(got, pw) || strings.Contains(got, "KKKK") || strings.Contains(got, "4b4b4b4b") || strings.Contains(got, "75 75 75") {
		t.Fatalf("secret leaked: %s", got)
	}
	if !strings.Contains(got, "***") {
		t.Fatalf("no redaction marker in %s", got)
	}
}
