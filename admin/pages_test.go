package admin

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"smimeproxy/identity"
)

// formClient is a browser without JavaScript: cookies, forms, redirects.
type formClient struct {
	t    *testing.T
	h    *harness
	c    *http.Client
	csrf string
	seen bytes.Buffer
	// last response of the chain (after redirects)
	last *http.Response
}

func newBrowser(t *testing.T, h *harness) *formClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &formClient{t: t, h: h, c: &http.Client{Jar: jar}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (b *formClient) send(req *http.Request) (int, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	b.seen.Write(data)
	_ = resp.Header.Write(&b.seen)
	if m := csrfRE.FindSubmatch(data); m != nil {
		b.csrf = string(m[1])
	}
	b.last = resp
	return resp.StatusCode, string(data)
}

func (b *formClient) get(path string) (int, string) {
	req, _ := http.NewRequest("GET", b.h.srv.URL+path, nil)
	return b.send(req)
}

// post sends a form as a same-origin browser would, with the page's CSRF
// token unless fields sets one.
func (b *formClient) post(path string, fields map[string]string) (int, string) {
	form := url.Values{}
	form.Set("csrf", b.csrf)
	for k, v := range fields {
		form.Set(k, v)
	}
	req, _ := http.NewRequest("POST", b.h.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.h.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.send(req)
}

func (b *formClient) login(email, pw string) {
	b.t.Helper()
	b.get("/unlock")
	if status, body := b.post("/login", map[string]string{"email": email, "password": pw, "next": "/unlock"}); status != http.StatusOK || !strings.Contains(body, `id="user">`+email) {
		b.t.Fatalf("login: %d %s", status, body)
	}
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for r := resp; r != nil; r = r.Request.Response {
		for _, c := range r.Cookies() {
			if c.Name == name {
				return c
			}
		}
	}
	return nil
}

func TestPageLoginSessionCookie(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t, h)
	status, body := b.get("/enroll")
	if status != http.StatusOK || !strings.Contains(body, `action="/login"`) || b.csrf == "" {
		t.Fatalf("enroll page before login: %d %s", status, body)
	}
	if c := cookieNamed(b.last, csrfCookie); c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("csrf cookie: %+v", c)
	}
	status, body = b.post("/login", map[string]string{"email": alice, "password": "guess", "next": "/enroll"})
	if status != http.StatusUnauthorized || !strings.Contains(body, "mail server refused this login") || !strings.Contains(body, `value="`+alice+`"`) {
		t.Fatalf("wrong mail password: %d %s", status, body)
	}
	status, body = b.post("/login", map[string]string{"email": strings.ToUpper(alice), "password": aliceMail, "next": "https://evil.example/"})
	if status != http.StatusOK || !strings.Contains(body, `id="token"`) || b.last.Request.URL.Path != "/enroll" {
		t.Fatalf("login (with a foreign next): %d %s %s", status, b.last.Request.URL, body)
	}
	c := cookieNamed(b.last, sessionCookie)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.MaxAge != int(DefaultSessionTTL/time.Second) {
		t.Fatalf("session cookie: %+v", c)
	}
	// The session is short-lived.
	h.clock.Advance(DefaultSessionTTL + time.Second)
	if _, body := b.get("/unlock"); !strings.Contains(body, `action="/login"`) {
		t.Fatalf("after the session expired: %s", body)
	}
	// Logging out ends the session on the server, not just in the browser.
	b.login(alice, aliceMail)
	sess := cookieNamed(b.last, sessionCookie)
	b.post("/logout", nil)
	req, _ := http.NewRequest("GET", h.srv.URL+"/unlock", nil)
	req.AddCookie(sess)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(data), `action="/login"`) {
		t.Fatalf("old session cookie still works after logout")
	}
}

func TestPageFormsRefuseForgery(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t, h)
	b.login(alice, aliceMail)
	good := b.csrf
	cases := []struct {
		name   string
		fields map[string]string
		origin string
		status int
		want   string
	}{
		{"no CSRF token", map[string]string{"csrf": ""}, "", http.StatusForbidden, "form has expired"},
		{"forged CSRF token", map[string]string{"csrf": strings.Repeat("0", len(good))}, "", http.StatusForbidden, "form has expired"},
		{"other site", nil, "http://evil.example", http.StatusForbidden, "cross_origin"},
	}
	for _, c := range cases {
		form := url.Values{"csrf": {good}, "password": {"x"}}
		for k, v := range c.fields {
			form.Set(k, v)
		}
		req, _ := http.NewRequest("POST", h.srv.URL+"/lock", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		status, body := b.send(req)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
	}
	// A CSRF token is bound to its browser: another browser's does not work.
	other := newBrowser(t, h)
	other.login(bob, bobMail)
	if status, _ := b.post("/lock", map[string]string{"csrf": other.csrf}); status != http.StatusForbidden {
		t.Fatalf("another browser's CSRF token accepted: %d", status)
	}
}

func TestPagesPendingRootIsResumable(t *testing.T) {
	h := newHarness(t)
	er := h.enroll(alice, aliceMail, "alice id password", false)
	b := newBrowser(t, h)
	b.login(alice, aliceMail)
	_, body := b.get("/unlock")
	if !strings.Contains(body, "waits for you to accept its issuing root") {
		t.Fatalf("unlock page of a pending ID: %s", body)
	}
	_, body = b.get("/enroll")
	if !strings.Contains(body, er.Root.Fingerprint) || !strings.Contains(body, `id="accept"`) {
		t.Fatalf("enroll page of a pending ID: %s", body)
	}
	_, body = b.post("/enroll/decline", nil)
	if !strings.Contains(body, "stays pending") || !strings.Contains(body, `id="accept"`) {
		t.Fatalf("after decline: %s", body)
	}
	if status, body := b.post("/enroll/accept", map[string]string{"fingerprint": "00:11"}); status != http.StatusConflict || !strings.Contains(body, "does not match") {
		t.Fatalf("accept with a wrong fingerprint: %d %s", status, body)
	}
	if _, body := b.post("/enroll/accept", map[string]string{"fingerprint": er.Root.Fingerprint}); !strings.Contains(body, "Digital ID is active") {
		t.Fatalf("accept: %s", body)
	}
	d, err := h.svc.Show(t.Context(), alice)
	if err != nil || d.Current.State != identity.StateActive {
		t.Fatalf("state after accept: %v %+v", err, d)
	}
	// Unlock with a wrong password shows the reason on the page.
	status, body := b.post("/unlock", map[string]string{"password": "wrong password", "remember": "1h0m0s"})
	if status != http.StatusForbidden || !strings.Contains(body, "wrong Digital ID password") {
		t.Fatalf("wrong unlock password: %d %s", status, body)
	}
	status, body = b.post("/unlock", map[string]string{"password": "alice id password", "remember": "1h0m0s"})
	if status != http.StatusTooManyRequests || !strings.Contains(body, "wait") || b.last.Header.Get("Retry-After") == "" {
		t.Fatalf("unlock during back-off: %d %s", status, body)
	}
}

func TestPageRememberChoicesAndUpgrade(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.RememberDefault = 15 * time.Minute; o.RememberMax = 2 * time.Hour })
	h.enroll(alice, aliceMail, "alice id password", true)
	b := newBrowser(t, h)
	b.login(alice, aliceMail)
	_, body := b.get("/unlock")
	opts := regexp.MustCompile(`<option value="([^"]+)"( selected)?>`).FindAllStringSubmatch(body, -1)
	var values []string
	selected := ""
	for _, o := range opts {
		values = append(values, o[1])
		if o[2] != "" {
			selected = o[1]
		}
	}
	if strings.Join(values, " ") != "5m0s 15m0s 30m0s 1h0m0s 2h0m0s" || selected != "15m0s" {
		t.Fatalf("remember choices %v, selected %q", values, selected)
	}
	_, body = b.get("/upgrade")
	if !strings.Contains(body, "Nothing to upgrade") {
		t.Fatalf("upgrade page: %s", body)
	}
}

func TestPageImportShowsWarningAndWorks(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t, h)
	b.login(bob, bobMail)
	_, body := b.get("/enroll")
	if !strings.Contains(body, "forget this Digital ID&#39;s password, the keys and all mail encrypted to them are lost") {
		t.Fatalf("import warning missing: %s", body)
	}
	p12, _ := bobPKCS12(t, "transport")
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"csrf": b.csrf, "pkcs12_password": "transport", "name": "Bob imported",
		"password": "bob id password", "password2": "bob id password"} {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("pkcs12", "bob.p12")
	fw.Write(p12)
	mw.Close()
	req, _ := http.NewRequest("POST", h.srv.URL+"/enroll/import", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	status, body := b.send(req)
	if status != http.StatusOK || !strings.Contains(body, "Bob imported") {
		t.Fatalf("import form: %d %s", status, body)
	}
	d, err := h.svc.Show(t.Context(), bob)
	if err != nil || d.Current.Source != identity.SourceImport {
		t.Fatalf("after import: %v %+v", err, d)
	}
}

func TestSecureCookiesBehindHTTPS(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.PublicURL = "https://gw.example.org" })
	req := httptest.NewRequest("GET", "https://gw.example.org/enroll", nil)
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	c := cookieNamed(rec.Result(), csrfCookie)
	if rec.Code != http.StatusOK || c == nil || !c.Secure {
		t.Fatalf("https public URL: %d cookie %+v", rec.Code, c)
	}
	// The default port may be left out of Host; other hosts may not.
	for host, want := range map[string]int{"gw.example.org": 200, "gw.example.org:443": 200, "127.0.0.1": 403, "gw.example.org.evil.example": 403} {
		req := httptest.NewRequest("GET", "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: %d, want %d", host, rec.Code, want)
		}
	}
}
