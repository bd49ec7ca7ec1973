package imap

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// structTree decodes fuzz bytes into a BODYSTRUCTURE tree as an upstream
// could send it (imapclient yields such values, including multiparts
// without children and message/rfc822 parts without an inner structure)
// and says independently whether imapserver could write it back: every
// multipart has children, every message/rfc822 its inner structure, no
// part deeper than 50, no nil part.
type structTree struct {
	data  []byte
	nodes int
	exts  map[any]any // node → the Extended it arrived with (non-nil only)
}

func (d *structTree) next() byte {
	if len(d.data) == 0 {
		return 0
	}
	b := d.data[0]
	d.data = d.data[1:]
	return b
}

func (d *structTree) decode(depth int) (imap.BodyStructure, bool) {
	b := d.next()
	if depth > 50 {
		// deeper than validStructure accepts: a leaf, so the tree stays small
		d.nodes++
		return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"}, false
	}
	switch b % 4 {
	case 0, 3:
		d.nodes++
		sp := &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Size: uint32(b)}
		if b&0x10 != 0 {
			sp.Extended = &imap.BodyStructureSinglePartExt{Location: "kept"}
			d.exts[sp] = sp.Extended
		}
		return sp, depth <= 50
	case 1:
		d.nodes++
		sp := &imap.BodyStructureSinglePart{Type: "message", Subtype: "rfc822", MessageRFC822: &imap.BodyStructureMessageRFC822{}}
		if b&0x10 != 0 {
			sp.Extended = &imap.BodyStructureSinglePartExt{Location: "kept"}
			d.exts[sp] = sp.Extended
		}
		if b&0x20 != 0 {
			return sp, false // no inner structure
		}
		inner, ok := d.decode(depth + 1)
		sp.MessageRFC822.BodyStructure = inner
		return sp, ok
	default:
		if b&0x20 != 0 && depth > 0 {
			return nil, false // a nil child
		}
		d.nodes++
		mp := &imap.BodyStructureMultiPart{Subtype: "mixed"}
		if b&0x10 != 0 {
			mp.Extended = &imap.BodyStructureMultiPartExt{Location: "kept"}
			d.exts[mp] = mp.Extended
		}
		ok := true
		for i := 0; i < int(b>>6); i++ {
			c, cok := d.decode(depth + 1)
			mp.Children = append(mp.Children, c)
			ok = ok && cok
		}
		return mp, ok && len(mp.Children) > 0
	}
}

// checkExtended walks bs after withExtended: every part has extension
// data (what imapserver needs), data that was there is kept, and it
// returns the number of parts.
func checkExtended(t *testing.T, bs imap.BodyStructure, exts map[any]any) int {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		if bs.Extended == nil {
			t.Fatal("single part without extension data after withExtended")
		}
		if was, ok := exts[bs]; ok && was != any(bs.Extended) {
			t.Fatal("withExtended replaced a part's own extension data")
		}
		n := 1
		if bs.MessageRFC822 != nil {
			n += checkExtended(t, bs.MessageRFC822.BodyStructure, exts)
		}
		return n
	case *imap.BodyStructureMultiPart:
		if bs.Extended == nil {
			t.Fatal("multipart without extension data after withExtended")
		}
		if was, ok := exts[bs]; ok && was != any(bs.Extended) {
			t.Fatal("withExtended replaced a multipart's own extension data")
		}
		n := 1
		for _, c := range bs.Children {
			n += checkExtended(t, c, exts)
		}
		return n
	}
	t.Fatalf("unexpected part %T", bs)
	return 0
}

// FuzzStructure: validStructure accepts exactly the upstream structures
// imapserver can write back, and withExtended turns each of those into
// one with extension data on every part, same shape, own data kept —
// and never fails on the ones validStructure rejects.
func FuzzStructure(f *testing.F) {
	f.Add([]byte{0})                      // text/plain
	f.Add([]byte{0x42, 0, 0})             // multipart with one text child
	f.Add([]byte{0x02})                   // multipart without children
	f.Add([]byte{0x21})                   // message/rfc822 without inner structure
	f.Add([]byte{0x01, 0x82, 0x10, 0x30}) // rfc822 → multipart(2) → text, text+ext
	f.Add([]byte{0x42, 0x22})             // multipart with a nil child
	for _, n := range []int{50, 51, 52} {
		deep := make([]byte, n+1)
		for i := range n {
			deep[i] = 0x01
		}
		f.Add(deep)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2048 {
			t.Skip()
		}
		d := &structTree{data: data, exts: map[any]any{}}
		bs, want := d.decode(0)
		if got := validStructure(bs, 0); got != want {
			t.Fatalf("validStructure = %v, want %v", got, want)
		}
		out := withExtended(bs)
		if out != bs {
			t.Fatal("withExtended returned a different structure")
		}
		if want {
			if n := checkExtended(t, out, d.exts); n != d.nodes {
				t.Fatalf("withExtended left %d parts of %d", n, d.nodes)
			}
		}
	})
}
