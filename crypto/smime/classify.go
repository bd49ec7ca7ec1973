package smime

import (
	"mime"
	"strings"
)

// Kind is what a message or entity is at its top level.
type Kind int

const (
	Unknown       Kind = iota // application/pkcs7-mime of a type not handled here
	Plain                     // not S/MIME
	Signed                    // multipart/signed with a PKCS#7 signature
	SignedOpaque              // application/pkcs7-mime; smime-type=signed-data
	Enveloped                 // application/pkcs7-mime; smime-type=enveloped-data
	AuthEnveloped             // application/pkcs7-mime; smime-type=authEnveloped-data
	CertsOnly                 // application/pkcs7-mime; smime-type=certs-only
)

func (k Kind) String() string {
	switch k {
	case Plain:
		return "plain"
	case Signed:
		return "signed"
	case SignedOpaque:
		return "signed-opaque"
	case Enveloped:
		return "enveloped"
	case AuthEnveloped:
		return "authenveloped"
	case CertsOnly:
		return "certs-only"
	}
	return "unknown"
}

// Classify tells from a Content-Type value what an entity is (RFC 8551
// §3.2). It accepts the application/x-pkcs7-* names of older clients, is
// case-insensitive, and when smime-type is missing goes by the name or
// filename parameter (*.p7m is enveloped-data in practice, *.p7c
// certs-only). A multipart/signed for another protocol (OpenPGP) is Plain:
// not S/MIME.
func Classify(contentType string) Kind {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		// A damaged parameter list must not hide what the entity is.
		mt, params = lenientMediaType(contentType)
	}
	mt = strings.ToLower(mt)
	switch mt {
	case "multipart/signed":
		switch strings.ToLower(params["protocol"]) {
		case "application/pkcs7-signature", "application/x-pkcs7-signature", "":
			return Signed
		}
		return Plain
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
	case "application/pkcs7-signature", "application/x-pkcs7-signature":
		return Unknown
	default:
		return Plain
	}
	switch strings.ToLower(params["smime-type"]) {
	case "signed-data":
		return SignedOpaque
	case "enveloped-data":
		return Enveloped
	case "authenveloped-data":
		return AuthEnveloped
	case "certs-only":
		return CertsOnly
	case "":
	default:
		return Unknown
	}
	name := strings.ToLower(params["name"])
	if name == "" {
		name = strings.ToLower(params["filename"])
	}
	switch {
	case strings.HasSuffix(name, ".p7c"):
		return CertsOnly
	case strings.HasSuffix(name, ".p7m"), name == "":
		// RFC 8551 §3.2.2: without smime-type the content must be looked
		// at; enveloped-data is what such messages almost always are.
		return Enveloped
	}
	return Unknown
}

// lenientMediaType splits a Content-Type that mime.ParseMediaType refuses
// into its media type and the parameters that look like name=value.
func lenientMediaType(v string) (string, map[string]string) {
	fields := strings.Split(v, ";")
	params := map[string]string{}
	for _, f := range fields[1:] {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		params[strings.ToLower(strings.TrimSpace(name))] = strings.Trim(strings.TrimSpace(value), `"`)
	}
	return strings.TrimSpace(fields[0]), params
}
