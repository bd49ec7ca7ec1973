package legacy

import (
	"errors"
	"fmt"
)

// BER (X.690) allows what DER and encoding/asn1 do not: indefinite
// lengths and strings split into constructed chunks. Java keystores,
// EJBCA, PKI.js and Windows write PKCS#12 and PKCS#7 files that way.
// berToDER rewrites those encodings so encoding/asn1 can read them. It
// never looks inside OCTET STRING contents: PKCS#12 MACs are computed
// over those bytes exactly as written, and callers normalise nested
// structures when they reach them.

const maxBERDepth = 64

var errBER = errors.New("malformed BER")

func berToDER(in []byte) ([]byte, error) {
	out, rest, err := berElement(in, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the structure", errBER, len(rest))
	}
	return out, nil
}

// berElement converts the element at the start of in and returns it with
// what follows it.
func berElement(in []byte, depth int) (out, rest []byte, err error) {
	if depth > maxBERDepth {
		return nil, nil, fmt.Errorf("%w: nested too deeply", errBER)
	}
	if len(in) < 2 {
		return nil, nil, fmt.Errorf("%w: truncated", errBER)
	}
	constructed := in[0]&0x20 != 0
	i := 1
	if in[0]&0x1f == 0x1f { // high tag number form
		for {
			if i >= len(in) || i > 5 {
				return nil, nil, fmt.Errorf("%w: bad tag", errBER)
			}
			i++
			if in[i-1]&0x80 == 0 {
				break
			}
		}
	}
	tag := in[:i]
	if i >= len(in) {
		return nil, nil, fmt.Errorf("%w: truncated", errBER)
	}
	l := int(in[i])
	i++
	indefinite := l == 0x80
	switch {
	case indefinite:
		if !constructed {
			return nil, nil, fmt.Errorf("%w: indefinite length on a primitive", errBER)
		}
	case l > 0x80:
		n := l & 0x7f
		if n > 4 || i+n > len(in) {
			return nil, nil, fmt.Errorf("%w: bad length", errBER)
		}
		l = 0
		for _, b := range in[i : i+n] {
			l = l<<8 | int(b)
		}
		i += n
	}
	if !indefinite && (l < 0 || l > len(in)-i) {
		return nil, nil, fmt.Errorf("%w: length %d exceeds the data", errBER, l)
	}
	if !constructed {
		return appendElement(nil, tag, in[i:i+l]), in[i+l:], nil
	}
	var body, children []byte
	if indefinite {
		children = in[i:]
	} else {
		children, rest = in[i:i+l], in[i+l:]
	}
	isString := tag[0] == 0x24 // constructed universal OCTET STRING
	for {
		if indefinite {
			if len(children) >= 2 && children[0] == 0 && children[1] == 0 {
				rest = children[2:]
				break
			}
		} else if len(children) == 0 {
			break
		}
		var child []byte
		child, children, err = berElement(children, depth+1)
		if err != nil {
			return nil, nil, err
		}
		if isString {
			if child[0] != 0x04 {
				return nil, nil, fmt.Errorf("%w: OCTET STRING chunk of another type", errBER)
			}
			child = elementContent(child)
		}
		body = append(body, child...)
	}
	if isString {
		return appendElement(nil, []byte{0x04}, body), rest, nil
	}
	return appendElement(nil, tag, body), rest, nil
}

func appendElement(out, tag, content []byte) []byte {
	out = append(out, tag...)
	n := len(content)
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	case n < 0x1000000:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		out = append(out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, content...)
}

// elementContent returns the contents of a DER element berElement made.
func elementContent(der []byte) []byte {
	i := 1
	if der[0]&0x1f == 0x1f {
		for der[i]&0x80 != 0 {
			i++
		}
		i++
	}
	if der[i] < 0x80 {
		return der[i+1:]
	}
	return der[i+1+int(der[i]&0x7f):]
}

// unmarshalBER decodes BER or DER into v, refusing trailing bytes.
func unmarshalBER(in []byte, v any) error {
	derErr := unmarshalAll(in, v)
	if derErr == nil {
		return nil
	}
	der, err := berToDER(in)
	if err != nil {
		return derErr // not BER either: the DER error says more
	}
	return unmarshalAll(der, v)
}
