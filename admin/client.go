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
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%w at %s: reading the reply: %v", ErrUnreachable, base, err)
	}
	if resp.StatusCode >= 300 {
		var eb errorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return &APIError{Status: resp.StatusCode, Code: "http_error",
				Message: fmt.Sprintf("unexpected reply from %s: is this the smimeproxy admin endpoint?", base)}
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, RequestID: eb.Error.RequestID}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin endpoint at %s: unreadable reply: %w", base, err)
	}
	return nil
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
