package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"testing"
)

// Moving CMS between MIME and the raw DER gpgsm reads and writes.

// mustSplitSigned returns the exact bytes of the first part of a
// multipart/signed message (what the signature covers, RFC 1847 §2.1) and
// the decoded signature of the second part.
func mustSplitSigned(t testing.TB, msg []byte) (content, sig []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("parse signed message: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/signed" || params["boundary"] == "" {
		t.Fatalf("not multipart/signed with a boundary: %q (%v)", m.Header.Get("Content-Type"), err)
	}
	body := msg[len(msg)-bodyLen(t, m):]
	delim := []byte("--" + params["boundary"])
	parts := bytes.Split(body, delim)
	// parts: preamble, first part, second part, "--" epilogue
	if len(parts) < 4 {
		t.Fatalf("multipart/signed has %d parts, want 2", len(parts)-2)
	}
	content = trimDelimiterLineEnds(parts[1])
	_, sigBody, ok := bytes.Cut(parts[2], []byte("\r\n\r\n"))
	if !ok {
		_, sigBody, ok = bytes.Cut(parts[2], []byte("\n\n"))
	}
	if !ok {
		t.Fatal("signature part has no header/body separator")
	}
	sig, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(sigBody)), ""))
	if err != nil {
		t.Fatalf("decode signature part: %v", err)
	}
	return content, sig
}

func bodyLen(t testing.TB, m *mail.Message) int {
	t.Helper()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(m.Body); err != nil {
		t.Fatal(err)
	}
	return buf.Len()
}

// trimDelimiterLineEnds drops the line end after a boundary line and the
// one before the next: both belong to the delimiters, not the part.
func trimDelimiterLineEnds(p []byte) []byte {
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		p = p[i+1:]
	}
	p = bytes.TrimSuffix(p, []byte("\n"))
	return bytes.TrimSuffix(p, []byte("\r"))
}

// mustCMSBody decodes the base64 body of an application/pkcs7-mime message.
func mustCMSBody(t testing.TB, msg []byte) []byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	if mt, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); mt != "application/pkcs7-mime" && mt != "application/x-pkcs7-mime" {
		t.Fatalf("Content-Type %q, want application/pkcs7-mime", m.Header.Get("Content-Type"))
	}
	if cte := strings.ToLower(m.Header.Get("Content-Transfer-Encoding")); cte != "base64" {
		t.Fatalf("Content-Transfer-Encoding %q, want base64", cte)
	}
	var buf bytes.Buffer
	buf.ReadFrom(m.Body)
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(buf.String()), ""))
	if err != nil {
		t.Fatalf("decode CMS body: %v", err)
	}
	return der
}

// wrapCMS makes an application/pkcs7-mime message of DER CMS.
func wrapCMS(from, to, smimeType string, der []byte) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: interop test\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: application/pkcs7-mime; smime-type=%s; name=\"smime.p7m\"\r\n"+
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n%s",
		from, to, smimeType, base64Lines(der)))
}

// multipartSigned makes a multipart/signed message of an entity and a
// detached DER signature over it.
func multipartSigned(from, to, micalg string, entity, sig []byte) []byte {
	return append([]byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: interop test\r\nMIME-Version: 1.0\r\n", from, to)),
		multipartSignedEntity(micalg, entity, sig)...)
}

func multipartSignedEntity(micalg string, entity, sig []byte) []byte {
	const b = "----gpgsm-interop-boundary"
	return []byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=\"" + micalg + "\"; boundary=\"" + b + "\"\r\n\r\n" +
		"This is an S/MIME signed message\r\n\r\n--" + b + "\r\n" + string(entity) + "\r\n--" + b + "\r\n" +
		"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n" + base64Lines(sig) + "\r\n--" + b + "--\r\n")
}

func base64Lines(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}
