package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// FuzzAPIBodies sends arbitrary bodies to every API route that reads one,
// with valid credentials: whatever arrives, the reply is never a server
// error and every refusal has the JSON error shape.
func FuzzAPIBodies(f *testing.F) {
	h := newHarness(f)
	routes := []struct {
		method, path string
		admin        bool
	}{
		{"POST", "/api/v1/tokens", true},
		{"POST", "/api/v1/trust/roots", true},
		{"POST", "/api/v1/enroll", false},
		{"POST", "/api/v1/enroll/import", false},
		{"POST", "/api/v1/trust/accept", false},
		{"POST", "/api/v1/unlock", false},
		{"POST", "/api/v1/lock", false},
		{"POST", "/api/v1/upgrade", false},
		{"POST", "/api/v1/upgrade/cancel", false},
	}
	f.Add(uint8(0), []byte(`{"email":"alice@example.test","purpose":"recover","ttl":"1h"}`))
	f.Add(uint8(2), []byte(`{"email":"alice@example.test","token":"ABCDE-FGHJK","name":"x","password":"12345678","remember":"-5m"}`))
	f.Add(uint8(3), []byte(`{"email":"alice@example.test","pkcs12":"MIIB","pkcs12_password":"","name":"x","password":"12345678"}`))
	f.Add(uint8(1), []byte(`{"pem":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}`))
	f.Add(uint8(5), []byte(`{"email":"ALICE@example.test","password":"","remember":"99999h"}`))
	f.Add(uint8(4), []byte(`{"email":"alice@example.test","fingerprint":"zz"}`))
	f.Add(uint8(6), []byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := routes[int(which)%len(routes)]
		req, err := http.NewRequest(rt.method, h.srv.URL+rt.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if rt.admin {
			req.Header.Set("Authorization", "Bearer "+adminToken)
		} else {
			req.SetBasicAuth(alice, aliceMail)
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, resp.StatusCode, data)
		}
		if resp.StatusCode >= 400 {
			var e errorBody
			if err := json.Unmarshal(data, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %s %q: error reply %s", rt.method, rt.path, body, data)
			}
		}
	})
}
