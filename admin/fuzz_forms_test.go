package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// fuzzFormCap is the body cap of the form fuzz targets: small, so bodies
// over it are reached.
const fuzzFormCap = 4096

// formRequest is a POST as the page handlers receive it: body capped as
// Server.ServeHTTP caps it.
func formRequest(contentType string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/enroll", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, fuzzFormCap)
	return r
}

// FuzzParseForm: whatever a browser (or anyone) posts, parseForm either
// reads the fields exactly as url.ParseQuery does, or refuses with one of
// its fixed replies (bad request, too large), never echoing the input.
func FuzzParseForm(f *testing.F) {
	h := newHarness(f, func(o *Options) { o.MaxRequestSize = fuzzFormCap })
	types := []string{"application/x-www-form-urlencoded", "multipart/form-data; boundary=XX", "multipart/form-data",
		"text/plain", "application/x-www-form-urlencoded; charset=utf-8"}
	f.Add(uint8(0), []byte("csrf=abc&name=Alice%27s+ID&password=x%20y&password2=x+y"))
	f.Add(uint8(0), []byte("a=%zz&b=1"))
	f.Add(uint8(0), []byte("a;b=1"))
	f.Add(uint8(0), bytes.Repeat([]byte("a=b&"), 2000))
	f.Add(uint8(1), []byte("--XX\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nBob\r\n--XX--\r\n"))
	f.Add(uint8(1), []byte("--XX\r\nContent-Disposition: form-data; name=\"pkcs12\"; filename=\"a.p12\"\r\n\r\n\x30\x82\r\n--XX"))
	f.Add(uint8(2), []byte("--\r\n"))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		ct := types[int(which)%len(types)]
		r := formRequest(ct, body)
		err := h.h.parseForm(r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e != errTooLarge && e.Code != "bad_request") {
				t.Fatalf("%s %q: %v, want a fixed refusal", ct, body, err)
			}
			if len(body) >= 8 && strings.Contains(e.Message, string(body)) {
				t.Fatalf("the refusal echoes the input: %q", e.Message)
			}
			if len(body) <= fuzzFormCap && e == errTooLarge {
				t.Fatalf("%d bytes refused as too large (cap %d)", len(body), fuzzFormCap)
			}
			return
		}
		if strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			want, qerr := url.ParseQuery(string(body))
			if qerr != nil || len(body) > fuzzFormCap {
				t.Fatalf("%q accepted; ParseQuery says %v (length %d)", body, qerr, len(body))
			}
			if len(want) == 0 && len(r.PostForm) == 0 {
				return
			}
			if !reflect.DeepEqual(map[string][]string(r.PostForm), map[string][]string(want)) {
				t.Fatalf("%q read as %v, want %v", body, r.PostForm, want)
			}
		}
	})
}

// FuzzImportForm posts arbitrary PKCS#12 uploads (file bytes, its
// password, the Digital ID name and passwords) through parseForm and
// doImport, as the /enroll/import page does for a logged-in user. Nothing
// may end in a server error, and neither password ever shows in the
// reply's message.
func FuzzImportForm(f *testing.F) {
	h := newHarness(f, func(o *Options) { o.MaxRequestSize = 64 << 10 })
	p12, _ := bobPKCS12(f, "transport pw")
	f.Add(p12, "transport pw", "Bob imported", "bob id password", "bob id password")
	f.Add(p12, "wrong transport", "Bob", "bob id password", "bob id password")
	f.Add(p12, "transport pw", "Bob", "short", "short")
	f.Add(p12, "transport pw", "Bob", "bob id password", "other password")
	f.Add(p12, "transport-pw-1", "Bob", "bob-id-pw-42", "bob-id-pw-43")
	f.Add(p12[:len(p12)/2], "transport pw", "Bob", "bob id password", "bob id password")
	f.Add([]byte{}, "", "", "", "")
	f.Add([]byte("\x30\x80\x02\x01\x03"), "x", strings.Repeat("n", 100), "bob id password", "bob id password")
	f.Fuzz(func(t *testing.T, file []byte, p12pw, name, pw, pw2 string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("pkcs12_password", p12pw)
		mw.WriteField("name", name)
		mw.WriteField("password", pw)
		mw.WriteField("password2", pw2)
		if len(file) > 0 {
			fw, _ := mw.CreateFormFile("pkcs12", "upload.p12")
			fw.Write(file)
		}
		mw.Close()
		r := formRequest(mw.FormDataContentType(), buf.Bytes())
		err := h.h.parseForm(r)
		if err == nil {
			_, _, err = h.h.doImport(r, bob)
		}
		if err == nil {
			// Imported: undo it, so the next input meets an empty mailbox.
			if rerr := h.svc.Revoke(t.Context(), bob); rerr != nil {
				t.Fatal(rerr)
			}
			return
		}
		e := replyFor(err, "fuzz")
		if e.Status >= 500 {
			t.Fatalf("import of %d bytes: %d %s (%v)", len(file), e.Status, e.Message, err)
		}
		for _, secret := range []string{p12pw, pw, pw2} {
			// A secret of only letters and spaces can be a piece of the
			// fixed English texts (" passw"); those prove nothing.
			if len(secret) >= 6 && strings.ContainsFunc(secret, notWordChar) && strings.Contains(e.Message, secret) {
				t.Fatalf("the reply names a password: %q", e.Message)
			}
		}
	})
}

// FuzzClientReply feeds arbitrary status codes and bodies, as a remote
// server (or something that is not smimeproxy at all) could send, into the
// admin client's reply decoding: success only for a 2xx whose body decodes
// into the reply type, an *APIError carrying the status for the rest, and
// nothing in an error that could drive the terminal it is printed on.
func FuzzClientReply(f *testing.F) {
	f.Add(uint16(200), uint8(0), []byte(`{"identities":[{"email":"a@b.test","state":"active"}]}`))
	f.Add(uint16(201), uint8(1), []byte(`{"token":"ABCDE-FGHJK","email":"a@b.test","purpose":"enroll","expires":"2026-01-01T00:00:00Z"}`))
	f.Add(uint16(200), uint8(2), []byte(`{"email":"a@b.test","keys":[{"envelope":"MIIB","certificate":{"serial":"1f"}}]}`))
	f.Add(uint16(200), uint8(2), []byte(`{"keys":[{"envelope":"%%%"}]}`))
	f.Add(uint16(404), uint8(0), []byte(`{"error":{"code":"no_identity","message":"no \u001b[31mID","request_id":"r1"}}`))
	f.Add(uint16(502), uint8(3), []byte("<html>Bad Gateway</html>"))
	f.Add(uint16(200), uint8(0), []byte(`[`))
	f.Add(uint16(302), uint8(3), []byte(``))
	f.Fuzz(func(t *testing.T, status uint16, which uint8, body []byte) {
		code := 200 + int(status)%400 // what a final HTTP reply can carry
		outs := []func() any{
			func() any { return &IdentitiesReply{} },
			func() any { return &TokenReply{} },
			func() any { return &EscrowReply{} },
			func() any { return nil },
		}
		mk := outs[int(which)%len(outs)]
		out := mk()
		err := decodeReply("http://127.0.0.1:1", code, body, out)
		var apiErr *APIError
		switch {
		case code >= 300:
			if !errors.As(err, &apiErr) || apiErr.Status != code {
				t.Fatalf("status %d: %v, want an *APIError with the status", code, err)
			}
			var eb errorBody
			if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
				if apiErr.Code != printable(eb.Error.Code, 64) || apiErr.Message != printable(eb.Error.Message, maxMessage) {
					t.Fatalf("error %+v does not carry the endpoint's %+v", apiErr, eb.Error)
				}
			} else if apiErr.Code != "http_error" {
				t.Fatalf("reply without the error shape gave code %q", apiErr.Code)
			}
			msg := apiErr.Error()
			for _, r := range msg {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
					t.Fatalf("error text holds %U: %q", r, msg)
				}
			}
			if !utf8.ValidString(msg) || utf8.RuneCountInString(apiErr.Message) > maxMessage+1 {
				t.Fatalf("error message invalid or unbounded (%d characters)", utf8.RuneCountInString(apiErr.Message))
			}
		case out == nil:
			if err != nil {
				t.Fatalf("2xx with no reply wanted: %v", err)
			}
		default:
			want := mk()
			if jerr := json.Unmarshal(body, want); (jerr == nil) != (err == nil) {
				t.Fatalf("body %q: decode error %v, json says %v", body, err, jerr)
			}
			if err == nil && !reflect.DeepEqual(out, want) {
				t.Fatalf("decoded %+v, want %+v", out, want)
			}
			if err != nil && errors.As(err, &apiErr) {
				t.Fatalf("a 2xx became an APIError: %v", err)
			}
		}
	})
}

// notWordChar tells characters that do not occur in the replies' fixed
// English texts' words.
func notWordChar(r rune) bool { return !unicode.IsLetter(r) && r != ' ' }
