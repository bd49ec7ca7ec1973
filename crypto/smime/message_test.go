package smime

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSplitMessage(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantOuter  []string // field names in order
		wantEntity string
	}{
		{
			name:       "content fields move inside, MIME-Version dropped",
			in:         "From: a@example.test\r\nMIME-Version: 1.0\r\nSubject: hi\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody\r\n",
			wantOuter:  []string{"From", "Subject"},
			wantEntity: "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody\r\n",
		},
		{
			name:       "LF input becomes CRLF, folding kept",
			in:         "From: a@example.test\nSubject: a\n long\ncontent-type: text/plain\n\nline1\nline2\n",
			wantOuter:  []string{"From", "Subject"},
			wantEntity: "content-type: text/plain\r\n\r\nline1\r\nline2\r\n",
		},
		{
			name:       "no Content-Type gets text/plain us-ascii",
			in:         "To: b@example.test\r\nContent-Transfer-Encoding: 7bit\r\n\r\nhello",
			wantOuter:  []string{"To"},
			wantEntity: "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\nhello",
		},
		{
			name:       "header only",
			in:         "Subject: x\r\n",
			wantOuter:  []string{"Subject"},
			wantEntity: "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
		},
		{
			name:       "no header",
			in:         "\r\nbody",
			wantEntity: "Content-Type: text/plain; charset=us-ascii\r\n\r\nbody",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outer, entity, err := SplitMessage([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range outer {
				names = append(names, f.Name)
				if !bytes.HasSuffix(f.Raw, []byte("\r\n")) {
					t.Errorf("field %s Raw %q does not end in CRLF", f.Name, f.Raw)
				}
			}
			if strings.Join(names, ",") != strings.Join(tt.wantOuter, ",") {
				t.Errorf("outer = %v, want %v", names, tt.wantOuter)
			}
			if string(entity) != tt.wantEntity {
				t.Errorf("entity = %q, want %q", entity, tt.wantEntity)
			}
		})
	}
}

func TestHeaderGetUnfolds(t *testing.T) {
	outer, _, err := SplitMessage([]byte("Subject: one\r\n two\r\n\tthree\r\nFROM: <a@b.test>\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := outer.Get("subject"); got != "one two\tthree" {
		t.Errorf("Get(subject) = %q", got)
	}
	if got := outer.Get("From"); got != "<a@b.test>" {
		t.Errorf("Get(From) = %q", got)
	}
	if outer.Get("To") != "" || outer.Has("To") {
		t.Error("absent field reported present")
	}
}

func TestComposeRoundTrip(t *testing.T) {
	in := "From: a@example.test\r\nTo: b@example.test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
	outer, entity, err := SplitMessage([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	outer = append(outer, NewField("MIME-Version", "1.0")) // must not be doubled
	var b bytes.Buffer
	if err := Compose(&b, outer, entity); err != nil {
		t.Fatal(err)
	}
	want := "From: a@example.test\r\nTo: b@example.test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
	if b.String() != want {
		t.Errorf("Compose = %q, want %q", b.String(), want)
	}
}

func TestSplitMessageErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"continuation first", " folded\r\n\r\n", ErrMalformedMIME},
		{"line without colon", "From: a\r\nnot a field\r\n\r\n", ErrMalformedMIME},
		{"space in name", "Bad Name: x\r\n\r\n", ErrMalformedMIME},
		{"long line", "X: " + strings.Repeat("a", MaxHeaderLine) + "\r\n\r\n", ErrLineTooLong},
		{"huge header", strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", MaxHeaderBytes/1000+2) + "\r\n", ErrHeaderTooLarge},
		{"huge header without end", strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", MaxHeaderBytes/1000+2), ErrHeaderTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := SplitMessage([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseEntityMultipart(t *testing.T) {
	in := "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"preamble\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nfirst\r\n" +
		"--b1  \r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n" +
		"--b2\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+\r\naGk8L2I+\r\n--b2--\r\n" +
		"\r\n--b1\r\n\r\n" +
		"--b1--\r\nepilogue\r\n"
	e, err := ParseEntity([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if e.MediaType != "multipart/mixed" || len(e.Parts) != 3 {
		t.Fatalf("top = %s with %d parts", e.MediaType, len(e.Parts))
	}
	if got := string(e.Parts[0].Raw); got != "Content-Type: text/plain\r\n\r\nfirst" {
		t.Errorf("part 1 raw = %q", got)
	}
	alt := e.Parts[1]
	if alt.MediaType != "multipart/alternative" || len(alt.Parts) != 1 {
		t.Fatalf("part 2 = %s with %d parts", alt.MediaType, len(alt.Parts))
	}
	body, err := alt.Parts[0].Body()
	if err != nil || string(body) != "<b>hi</b>" {
		t.Errorf("html body = %q, %v", body, err)
	}
	if string(alt.RawBody) != "--b2\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+\r\naGk8L2I+\r\n--b2--\r\n" {
		t.Errorf("part 2 body = %q", alt.RawBody)
	}
	if e.Parts[2].MediaType != "text/plain" || len(e.Parts[2].RawBody) != 0 {
		t.Errorf("part 3 = %s %q", e.Parts[2].MediaType, e.Parts[2].RawBody)
	}
}

func TestParseEntityLF(t *testing.T) {
	in := "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\na\nb\n--x--\n"
	e, err := ParseEntity([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Parts) != 1 || string(e.Parts[0].RawBody) != "a\nb" {
		t.Fatalf("parts = %d, body %q", len(e.Parts), e.Parts[0].RawBody)
	}
}

func TestParseEntityBoundaryPrefixIsNotDelimiter(t *testing.T) {
	in := "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n--xy not a delimiter\r\n--x--\r\n"
	e, err := ParseEntity([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Parts) != 1 || string(e.Parts[0].RawBody) != "--xy not a delimiter" {
		t.Fatalf("parts = %d, body %q", len(e.Parts), e.Parts[0].RawBody)
	}
}

func nested(depth int) string {
	var b strings.Builder
	for i := 0; i < depth; i++ {
		b.WriteString("Content-Type: multipart/mixed; boundary=b" + string(rune('a'+i%26)) + strings.Repeat("z", i/26) + "\r\n\r\n--b" + string(rune('a'+i%26)) + strings.Repeat("z", i/26) + "\r\n")
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nleaf\r\n")
	return b.String()
}

func TestParseEntityLimits(t *testing.T) {
	if _, err := ParseEntity([]byte(nested(MaxDepth))); err != nil {
		t.Fatalf("depth %d refused: %v", MaxDepth, err)
	}
	if _, err := ParseEntity([]byte(nested(MaxDepth + 1))); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("depth %d: err = %v, want ErrTooDeep", MaxDepth+1, err)
	}
	many := "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n\r\n", MaxParts+1) + "--b--\r\n"
	if _, err := ParseEntity([]byte(many)); !errors.Is(err, ErrTooManyParts) {
		t.Fatalf("many parts: err = %v, want ErrTooManyParts", err)
	}
}

func TestParseEntityErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"multipart without boundary", "Content-Type: multipart/mixed\r\n\r\nx"},
		{"multipart without delimiter", "Content-Type: multipart/mixed; boundary=q\r\n\r\nx"},
		{"bad media type", "Content-Type: /\r\n\r\nx"},
		{"bad part header", "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nno colon\r\n\r\n--q--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseEntity([]byte(tt.in)); !errors.Is(err, ErrMalformedMIME) {
				t.Fatalf("err = %v, want ErrMalformedMIME", err)
			}
		})
	}
}

func TestEntityBodyDecoding(t *testing.T) {
	tests := []struct {
		cte, body, want string
		bad             bool
	}{
		{"", "plain", "plain", false},
		{"8bit", "gr\xc3\xbc\xc3\x9f", "gr\xc3\xbc\xc3\x9f", false},
		{"base64", "aGVs\r\nbG8=\r\n", "hello", false},
		{"base64", "aGVs\nbG8 =", "hello", false},
		{"base64", "a!!!", "", true},
		{"quoted-printable", "gr=C3=BC=\r\nn", "gr\xc3\xbcn", false},
		{"x-uuencode", "x", "", true},
	}
	for _, tt := range tests {
		in := "Content-Type: text/plain\r\n"
		if tt.cte != "" {
			in += "Content-Transfer-Encoding: " + tt.cte + "\r\n"
		}
		e, err := ParseEntity([]byte(in + "\r\n" + tt.body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Body()
		if tt.bad {
			if !errors.Is(err, ErrMalformedMIME) {
				t.Errorf("%s %q: err = %v, want ErrMalformedMIME", tt.cte, tt.body, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s %q: body = %q, %v; want %q", tt.cte, tt.body, got, err, tt.want)
		}
	}
}

func FuzzSplitMessage(f *testing.F) {
	f.Add([]byte("From: a@example.test\r\nSubject: x\r\n y\r\nContent-Type: text/plain\r\n\r\nbody\r\n"))
	f.Add([]byte("Subject: x\n\nbody"))
	f.Add([]byte(" bad\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		outer, entity, err := SplitMessage(in)
		if err != nil {
			return
		}
		for _, fld := range outer {
			if isContentField(fld.Name) || !bytes.HasSuffix(fld.Raw, []byte("\r\n")) {
				t.Fatalf("bad outer field %q", fld.Raw)
			}
		}
		// The entity must itself parse as a header block with a Content-Type.
		h, _, err := parseHeader(entity, MaxHeaderBytes+1024)
		if err != nil {
			t.Fatalf("entity header does not parse: %v", err)
		}
		if !h.Has("Content-Type") {
			t.Fatal("entity without Content-Type")
		}
		var b bytes.Buffer
		if err := Compose(&b, outer, entity); err != nil {
			t.Fatal(err)
		}
		o2, e2, err := SplitMessage(b.Bytes())
		if err != nil {
			t.Fatalf("composed message does not split again: %v", err)
		}
		if len(o2) != len(outer) || !bytes.Equal(e2, entity) {
			t.Fatalf("split(compose(x)) differs")
		}
	})
}

func FuzzParseEntity(f *testing.F) {
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: text/plain\n\nhi"))
	f.Add([]byte(nested(3)))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := ParseEntity(in)
		if err != nil {
			return
		}
		var walk func(e *Entity, depth int)
		walk = func(e *Entity, depth int) {
			if depth > MaxDepth {
				t.Fatalf("depth %d beyond limit", depth)
			}
			if e.IsMultipart() && len(e.Parts) == 0 {
				t.Fatal("multipart without parts")
			}
			_, _ = e.Body() // may fail on bad encodings; must not panic
			for _, p := range e.Parts {
				walk(p, depth+1)
			}
		}
		walk(e, 0)
	})
}

func TestToCRLF(t *testing.T) {
	for in, want := range map[string]string{
		"":              "",
		"\n":            "\r\n",
		"a\nb":          "a\r\nb",
		"a\r\nb\n\nc\r": "a\r\nb\r\n\r\nc\r",
		"\n\n":          "\r\n\r\n",
		"x\r\n\r\n":     "x\r\n\r\n",
		"\r\r\n\n":      "\r\r\n\r\n",
		"no line end":   "no line end",
		"trailing lf\n": "trailing lf\r\n",
	} {
		if got := string(ToCRLF([]byte(in))); got != want {
			t.Errorf("ToCRLF(%q) = %q, want %q", in, got, want)
		}
	}
}
