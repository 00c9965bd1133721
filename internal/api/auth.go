package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// MinTokenLen is the shortest token CheckToken accepts: 16 characters, e.g.
// `openssl rand -hex 32` gives 64.
const MinTokenLen = 16

// CheckToken reports why tok cannot be a bearer token: too short, or holding
// a character that cannot travel in an Authorization header (space, control
// or non-ASCII). The empty token (no token) is valid.
func CheckToken(tok string) error {
	if tok == "" {
		return nil
	}
	if len(tok) < MinTokenLen {
		return errors.New("too short: use at least 16 characters, e.g. `openssl rand -hex 32`")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return errors.New("only printable ASCII without spaces is allowed")
		}
	}
	return nil
}

// exempt are the paths any GET or HEAD may read without a token: probes and
// Prometheus must not need the read token. Matching is exact, so that an
// unclean path ("//metrics", "/metrics/") is authorized like any other.
var exempt = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// isRead reports whether method is a read. Every other method, known or not,
// is a mutation: it needs the mutation token and is audited.
func isRead(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// Credentials, as the audit log names them.
const (
	credToken     = "token"      // the mutation token
	credReadToken = "read-token" // the read token
	credNone      = "none"       // no Authorization: Bearer header
	credInvalid   = "invalid"    // a bearer token that matches neither token
	credInsecure  = "insecure"   // no token needed: InsecureMutations
	credOpen      = "open"       // no token needed: an exempt path, or no read token configured
)

// authorizer decides whether a request may proceed. It keeps SHA-256
// digests of the tokens, not the tokens, and compares digests in constant
// time, so that neither a token's bytes nor its length show in the timing.
// It is immutable and safe for concurrent use.
type authorizer struct {
	token, read       [sha256.Size]byte
	hasToken, hasRead bool
	insecure          bool
	// equal is subtle.ConstantTimeCompare; a field so that the tests can
	// check every token comparison goes through it.
	equal func(x, y []byte) int
}

func newAuthorizer(o Options) *authorizer {
	return &authorizer{token: sha256.Sum256([]byte(o.Token)), read: sha256.Sum256([]byte(o.ReadToken)),
		hasToken: o.Token != "", hasRead: o.ReadToken != "", insecure: o.InsecureMutations,
		equal: subtle.ConstantTimeCompare}
}

// decision is the outcome of authorize: allowed, or the refusal to write.
type decision struct {
	status    int    // 0: allowed; else 401 or 403
	cred      string // credential presented, one of the cred* constants
	challenge string // WWW-Authenticate value of a refusal, if any
	msg       string // refusal message for the client
}

func (d decision) allowed() bool { return d.status == 0 }

// write sends the refusal as JSON; it never echoes the presented token.
func (d decision) write(w http.ResponseWriter) {
	if d.challenge != "" {
		w.Header().Set("WWW-Authenticate", d.challenge)
	}
	WriteJSON(w, d.status, map[string]string{"error": d.msg})
}

// Refusals.
const (
	challenge        = `Bearer realm="cairn"`
	challengeInvalid = `Bearer realm="cairn", error="invalid_token"`
	challengeScope   = `Bearer realm="cairn", error="insufficient_scope"`
	msgDisabled      = "mutations are disabled: this server has no mutation token; start it with --http-token-file (or CAIRN_HTTP_TOKEN) and send Authorization: Bearer <token>"
)

// authorize decides on r from its method, path and Authorization header.
// Both tokens are always compared, whichever matches.
func (a *authorizer) authorize(r *http.Request) decision {
	read := isRead(r.Method)
	if read && (!a.hasRead || exempt[r.URL.Path]) {
		return decision{cred: credOpen}
	}
	if !read && !a.hasToken {
		if a.insecure {
			return decision{cred: credInsecure}
		}
		return decision{status: http.StatusForbidden, cred: credNone, msg: msgDisabled}
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return decision{status: http.StatusUnauthorized, cred: credNone, challenge: challenge, msg: "missing bearer token (Authorization: Bearer <token>)"}
	}
	sum := sha256.Sum256([]byte(tok))
	matchToken := a.hasToken && a.equal(sum[:], a.token[:]) == 1
	matchRead := a.hasRead && a.equal(sum[:], a.read[:]) == 1
	switch {
	case matchToken:
		return decision{cred: credToken}
	case matchRead && read:
		return decision{cred: credReadToken}
	case matchRead:
		return decision{status: http.StatusForbidden, cred: credReadToken, challenge: challengeScope, msg: "the read token does not allow mutations"}
	default:
		return decision{status: http.StatusUnauthorized, cred: credInvalid, challenge: challengeInvalid, msg: "invalid bearer token"}
	}
}

// bearer returns the token of an "Authorization: Bearer <token>" header
// value; the scheme is case-insensitive (RFC 7235).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.Trim(tok, " ")
	return tok, tok != ""
}
