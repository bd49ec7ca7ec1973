package smime

import (
	"bytes"
	"testing"
)

// TestSplitMessageInPlaceMatchesSplitMessage: whatever the header layout,
// the in-place split gives SplitMessage's outer fields and entity, and the
// entity is inside the buffer handed over unless a copy was unavoidable.
func TestSplitMessageInPlaceMatchesSplitMessage(t *testing.T) {
	cases := []struct {
		name    string
		msg     string
		inPlace bool
	}{
		{"interleaved fields", "From: a@example.test\r\nContent-Type: text/plain\r\nTo: b@example.test\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\nSubject: s\r\n\r\nbody\r\n", true},
		{"content fields first", "Content-Type: multipart/mixed;\r\n boundary=x\r\nFrom: a@example.test\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n", true},
		{"no content type, room for one", "From: a-long-address@example.test\r\nTo: b-long-address@example.test\r\nSubject: a subject long enough\r\n\r\nbody\r\n", true},
		{"no content type, no room", "From: a@x\r\n\r\nbody\r\n", false},
		{"empty body", "From: a@example.test\r\nContent-Type: text/plain\r\n\r\n", true},
		{"bare LF", "From: a@example.test\nContent-Type: text/plain\n\nbody\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantOuter, wantEntity, err := SplitMessage([]byte(c.msg))
			if err != nil {
				t.Fatal(err)
			}
			buf := []byte(c.msg)
			outer, entity, err := SplitMessageInPlace(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(entity, wantEntity) {
				t.Fatalf("entity %q, want %q", entity, wantEntity)
			}
			if len(outer) != len(wantOuter) {
				t.Fatalf("%d outer fields, want %d", len(outer), len(wantOuter))
			}
			for i := range outer {
				if outer[i].Name != wantOuter[i].Name || !bytes.Equal(outer[i].Raw, wantOuter[i].Raw) {
					t.Fatalf("outer field %d %q, want %q", i, outer[i].Raw, wantOuter[i].Raw)
				}
			}
			inside := len(entity) > 0 && &entity[len(entity)-1] == &buf[len(buf)-1]
			if inside != c.inPlace {
				t.Fatalf("entity inside the buffer: %v, want %v", inside, c.inPlace)
			}
			// The outer fields do not alias the buffer.
			clear(buf)
			for i := range outer {
				if !bytes.Equal(outer[i].Raw, wantOuter[i].Raw) {
					t.Fatalf("outer field %d changed with the buffer", i)
				}
			}
		})
	}
}

func FuzzSplitMessageInPlace(f *testing.F) {
	f.Add([]byte("From: a@example.test\r\nContent-Type: text/plain\r\nTo: b\r\n\r\nbody\r\n"))
	f.Add([]byte("From: a@x\r\n\r\nbody\r\n"))
	f.Add([]byte("Content-Type: text/plain\n\nx"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		wantOuter, wantEntity, wantErr := SplitMessage(bytes.Clone(msg))
		outer, entity, err := SplitMessageInPlace(msg)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("error %v, SplitMessage's %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(entity, wantEntity) || len(outer) != len(wantOuter) {
			t.Fatalf("split differs from SplitMessage's")
		}
		for i := range outer {
			if !bytes.Equal(outer[i].Raw, wantOuter[i].Raw) {
				t.Fatalf("outer field %d differs", i)
			}
		}
	})
}
