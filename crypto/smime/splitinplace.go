package smime

import "bytes"

// SplitMessageInPlace is SplitMessage for a caller that hands over msg:
// the entity is assembled inside msg instead of in a copy, so a large
// message is held once. The header block is rewritten so that the entity's
// Content-* fields end just before the body; the entity returned is the
// tail of msg from there, and the outer fields are copies that do not
// alias msg. msg must not be used otherwise afterwards.
//
// When msg has bare LFs, or the entity's header would be longer than the
// message's (a message without Content-Type and with almost no header
// gets one added), it falls back to SplitMessage's copy.
func SplitMessageInPlace(msg []byte) (outer Header, entity []byte, err error) {
	if bareLFs(msg) != 0 {
		return SplitMessage(msg)
	}
	outer, inner, body, err := splitFields(msg)
	if err != nil {
		return nil, nil, err
	}
	var head bytes.Buffer
	inner.WriteTo(&head)
	head.WriteString("\r\n")
	bodyStart := len(msg) - len(body)
	if head.Len() > bodyStart {
		return SplitMessage(msg)
	}
	for i := range outer {
		outer[i].Raw = bytes.Clone(outer[i].Raw)
	}
	start := bodyStart - head.Len()
	copy(msg[start:bodyStart], head.Bytes())
	clear(msg[:start]) // the moved header block's old bytes
	return outer, msg[start:], nil
}
