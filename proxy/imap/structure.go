package imap

import (
	"bytes"

	"github.com/emersion/go-imap/v2"
)

// validStructure checks what imapserver needs to write a structure back
// (a multipart has children) and bounds its depth.
func validStructure(bs imap.BodyStructure, depth int) bool {
	if depth > 50 {
		return false
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		if bs.MessageRFC822 != nil {
			return bs.MessageRFC822.BodyStructure != nil && validStructure(bs.MessageRFC822.BodyStructure, depth+1)
		}
		return true
	case *imap.BodyStructureMultiPart:
		if len(bs.Children) == 0 {
			return false
		}
		for _, c := range bs.Children {
			if !validStructure(c, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// withExtended fills in empty extension data where the upstream sent
// none: imapserver can only write BODYSTRUCTURE with it.
func withExtended(bs imap.BodyStructure) imap.BodyStructure {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		if bs.Extended == nil {
			bs.Extended = &imap.BodyStructureSinglePartExt{}
		}
		if bs.MessageRFC822 != nil {
			withExtended(bs.MessageRFC822.BodyStructure)
		}
	case *imap.BodyStructureMultiPart:
		if bs.Extended == nil {
			bs.Extended = &imap.BodyStructureMultiPartExt{}
		}
		for _, c := range bs.Children {
			withExtended(c)
		}
	}
	return bs
}

// splitHeader returns the length of the header block of raw, including
// the blank line that ends it (all of raw when there is none).
func splitHeader(raw []byte) int {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return len(raw)
		}
		line := raw[i : i+j+1]
		i += j + 1
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return i
		}
	}
	return len(raw)
}
