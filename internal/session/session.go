// Package session keeps signed-in users' state on the server. The browser
// holds only an opaque ticket: a 256-bit random id in an HttpOnly cookie. The
// Store holds the session sealed with AES-256-GCM under the configured keys,
// at a key derived from the id with a keyed hash, so a dump of the store can
// neither be read nor replayed as cookies.
//
// # Frontends
//
// A gateway serving several frontends has one Manager per frontend
// (Options.Frontend), all over one store and one set of keys. A session
// belongs to the frontend that created it, and every other frontend's
// Manager treats it as absent (ErrNotFound), by three independent means:
//
//   - Store keys, tags, lock keys and replay keys are HMACs whose input
//     carries the frontend's name (sealer.lookup): one ticket, subject or
//     IdP sid maps to a different key in each frontend. A manager never
//     even looks up another frontend's entry, and back-channel logout or
//     an operator's revocation through one frontend's tags never reaches
//     another frontend's sessions, even for the same subject and the same
//     provider sid.
//   - The AEAD's additional data carries the name too (Manager.aad): the
//     store key and the name in store mode, the cookie name and the name
//     in cookie mode, the purpose and the name for Seal. A sealed session
//     copied to another frontend's key, opened through another frontend's
//     handle, or sent under another frontend's cookie name fails to open:
//     the transplant fails cryptographically, before any field is read.
//   - The sealed record names its frontend (encodeRecord), compared after
//     decoding as a last line of defence. The name is not a Session field:
//     a session loaded through a Manager is that Manager's frontend's
//     (Manager.Frontend), and Session keeps its size, so the hot path's
//     copy of it costs what it did.
//
// The empty name is the single implicit frontend of a configuration
// without frontends: every derivation is then byte for byte what it was
// before frontends existed, and the sealed record names no frontend, so
// sessions stored by earlier versions keep loading
// (sessiontest/testdata/legacy-session.json, a JSON record: see codec.go
// for the record and the encodings it reads).
package session

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when there is no live session.
var ErrNotFound = errors.New("session not found")

// Session is one signed-in user. Tokens never leave the server.
type Session struct {
	// ID is the cookie's ticket. It is not part of the sealed data.
	ID string `json:"-"`
	// Handle names the session to operators: its store key, a keyed hash
	// of the ticket from which the ticket cannot be recovered. Set by loads.
	Handle string `json:"-"`

	Subject      string `json:"sub"`
	Issuer       string `json:"iss"`
	IdPSessionID string `json:"sid,omitempty"`
	SessionState string `json:"session_state,omitempty"`
	// LogoutID is the value of /bff/logout's sid parameter: random, so a
	// cross-site page cannot sign the user out, and never the ticket.
	LogoutID string         `json:"logout_id"`
	Claims   map[string]any `json:"claims"`

	IDToken      string    `json:"id_token,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	AccessExpiry time.Time `json:"access_expiry,omitzero"`
	// AccessObtained is when the access token was issued to us; with
	// AccessExpiry it gives the token's lifetime.
	AccessObtained time.Time `json:"access_obtained,omitzero"`
	Scopes         []string  `json:"scopes,omitempty"`
	// DPoPKey is the session's DPoP private key (RFC 9449), the 33 bytes
	// of oidc.DPoPKey.MarshalBinary, when the gateway asks for DPoP-bound
	// tokens: sealed with the tokens it is bound to, so every instance
	// sharing the store signs with it, and cookie mode carries it. A
	// session written before it existed has none, and loads as before.
	// Secret: never log it.
	DPoPKey []byte `json:"dpop_key,omitempty"`

	// ClientIP and UserAgent (shortened) at login, for operators.
	ClientIP  string `json:"client_ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`

	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	// Expires is the absolute end; the idle end is LastSeen + idle timeout.
	Expires time.Time `json:"expires"`
}

// Store keeps sealed session blobs; it knows nothing about HTTP. Keys and
// tags are opaque strings chosen by the Manager.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error) // ErrNotFound
	Set(ctx context.Context, key string, v []byte, ttl time.Duration, tags ...string) error
	Delete(ctx context.Context, key string) error
	// Tagged lists the keys of the live entries set with tag.
	Tagged(ctx context.Context, tag string) ([]string, error)
	// DeleteTagged deletes every entry set with tag.
	DeleteTagged(ctx context.Context, tag string) error
	Close() error
}

// Locker serialises work on one key, across every process sharing the
// store. The lock expires after ttl even if unlock is never called. A
// store with replicas may take a lock durably, as it writes, unless Lossy
// marks ctx (see package redisstore).
type Locker interface {
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), err error)
}

// lossyKey marks a context whose store writes may be lost harmlessly.
type lossyKey struct{}

// Lossy reports whether the writes made with ctx may be lost without harm
// (the idle-timeout touch, FirstUse's replay markers and their lock), so
// that a store need not wait for replicas to acknowledge them. Every other
// write (a new session, rotated tokens, the refresh lock) is durable.
func Lossy(ctx context.Context) bool {
	v, _ := ctx.Value(lossyKey{}).(bool)
	return v
}
