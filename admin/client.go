package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"smimeproxy/crypto/seal"
)

// ErrUnreachable: the endpoint did not answer at all.
var ErrUnreachable = errors.New("cannot reach the admin endpoint")

// APIError is an error reply of the endpoint.
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
	if e.RequestID != "" {
		msg += ", request " + e.RequestID
	}
	return msg
}

// Client calls the admin API of a running server, as `smimeproxy admin`
// does.
type Client struct {
	BaseURL string      // "http://127.0.0.1:8080"
	Token   seal.Secret // the token_file contents
	HTTP    *http.Client
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	base := strings.TrimRight(c.BaseURL, "/")
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return fmt.Errorf("admin endpoint %q: %w", c.BaseURL, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(c.Token))
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, below
		}
		return fmt.Errorf("%w at %s (%v)", ErrUnreachable, base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return fmt.Errorf("%w at %s: reading the reply: %v", ErrUnreachable, base, err)
	}
	return decodeReply(base, resp.StatusCode, data, out)
}

// maxReply bounds what the client reads of a reply.
const maxReply = 16 << 20

// decodeReply turns a reply of the (possibly remote, possibly not even
// smimeproxy) endpoint at base into out or an error: an *APIError for any
// status from 300 on, with the endpoint's code and message when the body
// has the error shape.
func decodeReply(base string, status int, data []byte, out any) error {
	if status >= 300 {
		var eb errorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return &APIError{Status: status, Code: "http_error",
				Message: fmt.Sprintf("unexpected reply from %s: is this the smimeproxy admin endpoint?", base)}
		}
		return &APIError{Status: status, Code: printable(eb.Error.Code, 64), Message: printable(eb.Error.Message, maxMessage),
			RequestID: printable(eb.Error.RequestID, 64)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin endpoint at %s: unreadable reply: %w", base, err)
	}
	return nil
}

// maxMessage bounds the length (in characters) of an error message taken
// from a reply.
const maxMessage = 1000

// printable makes text from a reply safe to print on a terminal: control
// and format characters (escape sequences, bidi overrides) become spaces,
// invalid UTF-8 becomes U+FFFD, and it is cut to max characters.
func printable(text string, max int) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, text)
	if utf8.RuneCountInString(text) > max {
		text = string([]rune(text)[:max]) + "…"
	}
	return text
}

// CreateToken issues a security token.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*TokenReply, error) {
	var out TokenReply
	if err := c.call(ctx, http.MethodPost, "/api/v1/tokens", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Identities lists every mailbox's current Digital ID.
func (c *Client) Identities(ctx context.Context) ([]IdentityView, error) {
	var out IdentitiesReply
	if err := c.call(ctx, http.MethodGet, "/api/v1/identities", nil, &out); err != nil {
		return nil, err
	}
	return out.Identities, nil
}

// Identity shows one mailbox's Digital IDs.
func (c *Client) Identity(ctx context.Context, email string) (*DetailsReply, error) {
	var out DetailsReply
	if err := c.call(ctx, http.MethodGet, "/api/v1/identities/"+url.PathEscape(email), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke withdraws a mailbox's current Digital ID.
func (c *Client) Revoke(ctx context.Context, email string) error {
	return c.call(ctx, http.MethodDelete, "/api/v1/identities/"+url.PathEscape(email), nil, nil)
}

// TrustRoots lists the org-wide trusted roots.
func (c *Client) TrustRoots(ctx context.Context) ([]RootView, error) {
	var out RootsReply
	if err := c.call(ctx, http.MethodGet, "/api/v1/trust/roots", nil, &out); err != nil {
		return nil, err
	}
	return out.Roots, nil
}

// TrustAdd makes the PEM certificate an org-wide trusted root.
func (c *Client) TrustAdd(ctx context.Context, pemText string) (*RootView, error) {
	var out RootView
	if err := c.call(ctx, http.MethodPost, "/api/v1/trust/roots", TrustAddRequest{PEM: pemText}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TrustRemove removes an org-wide root added through the API.
func (c *Client) TrustRemove(ctx context.Context, fingerprint string) error {
	return c.call(ctx, http.MethodDelete, "/api/v1/trust/roots/"+url.PathEscape(fingerprint), nil, nil)
}
