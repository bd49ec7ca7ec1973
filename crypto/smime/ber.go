package smime

import (
	"errors"
	"fmt"
)

// BER input (Outlook, OpenSSL -stream) uses indefinite lengths and
// constructed, chunked OCTET STRINGs; the parsers here read DER only. berToDER
// rewrites such input once into definite, minimal lengths and joins
// constructed universal strings into primitive ones. Constructed
// context-specific strings (the [0] IMPLICIT encryptedContent of a streamed
// CMS message) cannot be told apart from structures without the schema, so
// they stay constructed and the CMS parser joins their chunks.

// maxBERDepth bounds nesting; CMS messages nest about a dozen levels.
const maxBERDepth = 64

// The parse tree costs about 150 bytes per element. Streaming encoders
// write content in chunks of a kilobyte or more (OpenSSL: 4096 bytes), so
// allowing one element per 128 input bytes, plus a base for the structure,
// admits real input while hostile input made of tiny elements cannot make
// the tree outgrow the message.
func maxBERElements(inputLen int) int { return 4096 + inputLen/128 }

// errBER wraps every problem found by the converter.
var errBER = errors.New("invalid BER")

// berNode is one element of the parsed input. Primitive elements point into
// the input; a joined string has its chunks in parts.
type berNode struct {
	tag      []byte // identifier octets, from the input
	children []berNode
	content  []byte   // primitive content
	parts    [][]byte // chunks of a joined constructed string
	length   int      // DER length of the contents
	prim     bool     // encoded as primitive in the output
}

// berToDER returns in unchanged when it already uses only definite, minimal
// lengths and no constructed universal strings, and a rewritten copy
// otherwise. Trailing bytes after the first element are an error.
func berToDER(in []byte) ([]byte, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("%w: empty input", errBER)
	}
	if isDERFraming(in, 0) {
		return in, nil
	}
	budget := maxBERElements(len(in))
	n, rest, err := parseBER(in, 0, &budget)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the end of the outer element", errBER, len(rest))
	}
	out := make([]byte, 0, derSize(&n))
	out = writeDER(out, &n)
	return out, nil
}

// isDERFraming reports whether in is exactly one element whose framing (at
// every level) needs no rewriting.
func isDERFraming(in []byte, depth int) bool {
	if depth > maxBERDepth {
		return false
	}
	tagLen, constructed, universal, tagNum, ok := readTag(in)
	if !ok {
		return false
	}
	length, hdr, indefinite, minimal, ok := readLength(in[tagLen:])
	if !ok || indefinite || !minimal || len(in)-tagLen-hdr != length {
		return false
	}
	if !constructed {
		return true
	}
	if universal && isStringTag(tagNum) {
		return false
	}
	body := in[tagLen+hdr:]
	for len(body) > 0 {
		n, ok := elementLen(body)
		if !ok || !isDERFraming(body[:n], depth+1) {
			return false
		}
		body = body[n:]
	}
	return true
}

// elementLen is the total length of the definite-length element at the
// start of b.
func elementLen(b []byte) (int, bool) {
	tagLen, _, _, _, ok := readTag(b)
	if !ok {
		return 0, false
	}
	length, hdr, indefinite, _, ok := readLength(b[tagLen:])
	if !ok || indefinite || length > len(b)-tagLen-hdr {
		return 0, false
	}
	return tagLen + hdr + length, true
}

// isStringTag: universal types whose BER form may be constructed chunks.
func isStringTag(tag int) bool {
	switch tag {
	case 4, 12, 19, 20, 22, 26, 30: // OCTET, UTF8, Printable, T61, IA5, Visible, BMP (BIT STRING chunks carry unused-bit counts and are not joined)
		return true
	}
	return false
}

// readTag parses identifier octets; tag numbers above 2^21 are refused.
func readTag(b []byte) (n int, constructed, universal bool, num int, ok bool) {
	if len(b) == 0 {
		return 0, false, false, 0, false
	}
	constructed = b[0]&0x20 != 0
	universal = b[0]&0xc0 == 0
	num = int(b[0] & 0x1f)
	n = 1
	if num == 0x1f {
		num = 0
		for {
			if n >= len(b) || n > 3 {
				return 0, false, false, 0, false
			}
			c := b[n]
			n++
			num = num<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	return n, constructed, universal, num, true
}

// readLength parses length octets: the length, the header size, whether it
// is the indefinite form and whether a definite form is minimal. Lengths
// beyond 2^31-1 are refused.
func readLength(b []byte) (length, n int, indefinite, minimal, ok bool) {
	if len(b) == 0 {
		return 0, 0, false, false, false
	}
	first := b[0]
	if first < 0x80 {
		return int(first), 1, false, true, true
	}
	if first == 0x80 {
		return 0, 1, true, false, true
	}
	count := int(first & 0x7f)
	if count > 4 || len(b) < 1+count {
		return 0, 0, false, false, false
	}
	var l uint64
	for _, c := range b[1 : 1+count] {
		l = l<<8 | uint64(c)
	}
	if l > 1<<31-1 {
		return 0, 0, false, false, false
	}
	minimal = l >= 0x80 && b[1] != 0
	return int(l), 1 + count, false, minimal, true
}

// parseBER reads one element from in and returns it with the bytes after it.
func parseBER(in []byte, depth int, budget *int) (berNode, []byte, error) {
	if depth > maxBERDepth {
		return berNode{}, nil, fmt.Errorf("%w: nested deeper than %d levels", errBER, maxBERDepth)
	}
	if *budget--; *budget < 0 {
		return berNode{}, nil, fmt.Errorf("%w: too many elements for the input size", errBER)
	}
	tagLen, constructed, universal, tagNum, ok := readTag(in)
	if !ok {
		return berNode{}, nil, fmt.Errorf("%w: truncated or oversized tag", errBER)
	}
	if tagLen == 1 && in[0] == 0 {
		return berNode{}, nil, fmt.Errorf("%w: unexpected end-of-contents", errBER)
	}
	length, hdr, indefinite, _, ok := readLength(in[tagLen:])
	if !ok {
		return berNode{}, nil, fmt.Errorf("%w: truncated or oversized length", errBER)
	}
	node := berNode{tag: in[:tagLen]}
	body := in[tagLen+hdr:]
	if !indefinite && length > len(body) {
		return berNode{}, nil, fmt.Errorf("%w: length %d exceeds the %d bytes left", errBER, length, len(body))
	}
	if !constructed {
		if indefinite {
			return berNode{}, nil, fmt.Errorf("%w: primitive element with indefinite length", errBER)
		}
		node.prim, node.content, node.length = true, body[:length], length
		return node, body[length:], nil
	}
	var rest []byte
	if !indefinite {
		rest = body[length:]
		body = body[:length]
	}
	for {
		if indefinite {
			if len(body) < 2 {
				return berNode{}, nil, fmt.Errorf("%w: missing end-of-contents", errBER)
			}
			if body[0] == 0 && body[1] == 0 {
				rest = body[2:]
				break
			}
		} else if len(body) == 0 {
			break
		}
		child, after, err := parseBER(body, depth+1, budget)
		if err != nil {
			return berNode{}, nil, err
		}
		body = after
		node.children = append(node.children, child)
	}
	if universal && isStringTag(tagNum) {
		joined, err := joinString(node, tagNum)
		return joined, rest, err
	}
	for i := range node.children {
		node.length += derSize(&node.children[i])
	}
	return node, rest, nil
}

// joinString turns a constructed universal string into a primitive one whose
// content is the concatenation of its (possibly nested) chunks.
func joinString(node berNode, tagNum int) (berNode, error) {
	out := berNode{tag: []byte{byte(tagNum)}, prim: true}
	for i := range node.children {
		n := &node.children[i]
		if !n.prim || len(n.tag) != 1 || int(n.tag[0]&^0x20) != tagNum {
			return berNode{}, fmt.Errorf("%w: chunk of a constructed string has another type", errBER)
		}
		if n.parts != nil { // a nested constructed chunk, already joined
			out.parts = append(out.parts, n.parts...)
		} else {
			out.parts = append(out.parts, n.content)
		}
		out.length += n.length
	}
	if out.parts == nil {
		out.parts = [][]byte{}
	}
	return out, nil
}

// derSize is the size of n's DER encoding (identifier, length, contents).
func derSize(n *berNode) int {
	return len(n.tag) + lengthSize(n.length) + n.length
}

func lengthSize(l int) int {
	switch {
	case l < 0x80:
		return 1
	case l < 1<<8:
		return 2
	case l < 1<<16:
		return 3
	case l < 1<<24:
		return 4
	}
	return 5
}

// appendLength appends a minimal DER length.
func appendLength(b []byte, l int) []byte {
	switch n := lengthSize(l); n {
	case 1:
		return append(b, byte(l))
	default:
		b = append(b, 0x80|byte(n-1))
		for i := n - 2; i >= 0; i-- {
			b = append(b, byte(l>>(8*i)))
		}
		return b
	}
}

func writeDER(out []byte, n *berNode) []byte {
	tag := n.tag
	if n.prim {
		out = append(out, tag[0]&^0x20)
		out = append(out, tag[1:]...)
	} else {
		out = append(out, tag...)
	}
	out = appendLength(out, n.length)
	switch {
	case n.parts != nil:
		for _, p := range n.parts {
			out = append(out, p...)
		}
	case n.prim:
		out = append(out, n.content...)
	default:
		for i := range n.children {
			out = writeDER(out, &n.children[i])
		}
	}
	return out
}
