package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"smimeproxy/identity"
)

// Error is an error with a fixed reply: the code clients branch on, the
// HTTP status, and a sentence for people. Its text never carries a secret
// or internal detail.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when set, becomes the Retry-After header.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func apiErr(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// Errors of the endpoint itself.
var (
	errNotFound       = apiErr(http.StatusNotFound, "not_found", "no such API route")
	errHostNotAllowed = apiErr(http.StatusForbidden, "host_not_allowed", "this endpoint does not answer to that host name")
	errCrossOrigin    = apiErr(http.StatusForbidden, "cross_origin", "requests from other web sites are refused")
	errNeedJSON       = apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the request body as application/json")
	errTooLarge       = apiErr(http.StatusRequestEntityTooLarge, "too_large", "the request body is too large")
	errBadJSON        = apiErr(http.StatusBadRequest, "bad_request", "the request body is not the JSON this call expects")
	errNoBearer       = apiErr(http.StatusUnauthorized, "unauthorized", "this call needs the administrator's bearer token (token_file)")
	errBadBearer      = apiErr(http.StatusUnauthorized, "unauthorized", "the administrator's bearer token is wrong")
	errNoLogin        = apiErr(http.StatusUnauthorized, "login_required", "log in with your mailbox address and mail password (HTTP Basic)")
	errOtherMailbox   = apiErr(http.StatusForbidden, "forbidden", "you can only act on your own mailbox")
	errNotImplemented = apiErr(http.StatusNotImplemented, "not_implemented", "legacy key upgrade is not available in this build")
	errBadCSRF        = apiErr(http.StatusForbidden, "bad_csrf", "the form has expired or did not come from this site: reload the page and try again")
	errSession        = apiErr(http.StatusUnauthorized, "login_required", "your login has expired: log in again")
)

func badRequest(msg string) *Error { return apiErr(http.StatusBadRequest, "bad_request", msg) }

// sentinels maps identity's errors, most specific first.
var sentinels = []struct {
	err    error
	status int
	code   string
}{
	{identity.ErrTokenMalformed, http.StatusBadRequest, "token_malformed"},
	{identity.ErrTokenUnknown, http.StatusNotFound, "token_unknown"},
	{identity.ErrTokenUsed, http.StatusConflict, "token_used"},
	{identity.ErrTokenExpired, http.StatusGone, "token_expired"},
	{identity.ErrTokenWrongMailbox, http.StatusForbidden, "token_wrong_mailbox"},
	{identity.ErrTokenWrongPurpose, http.StatusForbidden, "token_wrong_purpose"},
	{identity.ErrLocked, http.StatusLocked, "locked"},
	{identity.ErrWrongPassword, http.StatusForbidden, "wrong_password"},
	{identity.ErrNoIdentity, http.StatusNotFound, "no_identity"},
	{identity.ErrPendingTrust, http.StatusConflict, "pending_trust"},
	{identity.ErrAlreadyEnrolled, http.StatusConflict, "already_enrolled"},
	{identity.ErrBadEmail, http.StatusBadRequest, "bad_email"},
	{identity.ErrBadName, http.StatusBadRequest, "bad_name"},
	{identity.ErrWeakPassword, http.StatusBadRequest, "weak_password"},
	{identity.ErrFingerprint, http.StatusConflict, "fingerprint_mismatch"},
	{identity.ErrNoEscrow, http.StatusNotFound, "no_escrow"},
	{identity.ErrEscrowKey, http.StatusServiceUnavailable, "escrow_key_unavailable"},
	{identity.ErrBadPKCS12, http.StatusBadRequest, "bad_pkcs12"},
	{identity.ErrNoCertificate, http.StatusNotFound, "no_certificate"},
	{identity.ErrDomain, http.StatusForbidden, "domain_not_allowed"},
	{identity.ErrNotTrusted, http.StatusNotFound, "not_trusted"},
	{identity.ErrAuthFailed, http.StatusUnauthorized, "auth_failed"},
	{identity.ErrUpstreamUnavailable, http.StatusServiceUnavailable, "upstream_unavailable"},
}

// replyFor turns any error into the reply a client may see. Unknown errors
// become "internal" with the request id only.
func replyFor(err error, reqID string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errTooLarge
	}
	var retry *identity.RetryError
	if errors.As(err, &retry) {
		secs := int((retry.After + time.Second - 1) / time.Second)
		return &Error{Status: http.StatusTooManyRequests, Code: "too_many_attempts",
			Message:    fmt.Sprintf("too many failed attempts: wait %d seconds before trying again", secs),
			RetryAfter: retry.After}
	}
	for _, m := range sentinels {
		if errors.Is(err, m.err) {
			// identity's sentinel texts are written for users and hold no secrets.
			return apiErr(m.status, m.code, m.err.Error())
		}
	}
	return apiErr(http.StatusInternalServerError, "internal",
		"something went wrong on the server; quote reference "+reqID+" to your administrator")
}

// errorBody is the JSON shape of every error reply.
type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

// fail writes err as the JSON error reply and logs what the client did not
// get to see.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	id := requestID(r.Context())
	e := s.logFailure(r, err)
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.RequestID = e.Code, e.Message, id
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(e.RetryAfter))
	}
	if e.Status == http.StatusUnauthorized && (e.Code == "login_required" || e.Code == "auth_failed") {
		w.Header().Set("WWW-Authenticate", `Basic realm="smimeproxy", charset="UTF-8"`)
	} else if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="smimeproxy admin"`)
	}
	writeJSON(w, e.Status, body)
}

// logFailure logs err (internal ones with their cause) and counts it.
func (s *Server) logFailure(r *http.Request, err error) *Error {
	id := requestID(r.Context())
	e := replyFor(err, id)
	s.metrics.failure(e.Code)
	level := slog.LevelInfo
	attrs := []slog.Attr{slog.String("request_id", id), slog.String("code", e.Code)}
	if e.Status >= 500 {
		level = slog.LevelError
		// Errors from identity and the store carry no secrets (their
		// types redact them), so the cause may go to the log.
		attrs = append(attrs, slog.String("cause", err.Error()))
	}
	s.log.LogAttrs(r.Context(), level, "admin request failed", attrs...)
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// retryAfterSeconds renders a wait as Retry-After seconds, rounded up.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}
