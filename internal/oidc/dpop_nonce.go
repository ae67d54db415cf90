package oidc

import (
	"container/list"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// DPoP nonces (RFC 9449 §8, §9): recognising a server's request for one,
// and remembering the latest each server gave.

// DefaultNonceCacheSize is the bound of a NonceCache made with size 0.
const DefaultNonceCacheSize = 1024

// NonceCache remembers the latest DPoP-Nonce each server sent, so the next
// proof to that server carries it without first being refused. Keys are
// the caller's: Cloakroom keys by origin (DPoPOrigin of the provider's
// token endpoint, of each upstream). It holds at most its size; setting a
// new key in a full cache forgets the key set longest ago. Reads take a
// shared lock only: the cache is read on every proof and written rarely. A
// NonceCache is safe for concurrent use; the zero value is not usable.
type NonceCache struct {
	max int
	mu  sync.RWMutex
	m   map[string]*list.Element // of *nonceEntry
	ll  list.List                // front: set most recently
}

type nonceEntry struct{ key, nonce string }

// NewNonceCache returns a cache of at most size keys (DefaultNonceCacheSize
// when size <= 0).
func NewNonceCache(size int) *NonceCache {
	if size <= 0 {
		size = DefaultNonceCacheSize
	}
	return &NonceCache{max: size, m: make(map[string]*list.Element)}
}

// Get returns the nonce last set for key, or "".
func (c *NonceCache) Get(key string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, ok := c.m[key]; ok {
		return e.Value.(*nonceEntry).nonce
	}
	return ""
}

// Set remembers nonce for key. A nonce that is not a valid DPoP-Nonce
// value (ValidDPoPNonce) is ignored: it could not go into a proof.
func (c *NonceCache) Set(key, nonce string) {
	if !ValidDPoPNonce(nonce) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		e.Value.(*nonceEntry).nonce = nonce
		c.ll.MoveToFront(e)
		return
	}
	for c.ll.Len() >= c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*nonceEntry).key)
	}
	c.m[key] = c.ll.PushFront(&nonceEntry{key: key, nonce: nonce})
}

// Len is the number of keys remembered.
func (c *NonceCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ll.Len()
}

// DPoPOrigin is u's origin, scheme://host[:port], in lower case and without
// the scheme's default port: the key under which NonceCache keeps a
// server's nonce.
func DPoPOrigin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Host), ":")
	switch scheme {
	case "https":
		host = strings.TrimSuffix(host, ":443")
	case "http":
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}

// ValidDPoPNonce reports whether s can be a DPoP-Nonce value and a proof's
// nonce: 1*NQCHAR (RFC 9449 §8.1; printable ASCII but '"' and '\'), and at
// most MaxDPoPNonceBytes long.
func ValidDPoPNonce(s string) bool {
	if s == "" || len(s) > MaxDPoPNonceBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// UseDPoPNonce reports whether a response asks for the proof to be sent
// again with a nonce, and returns that nonce: an authorization server's
// 400 whose JSON error is use_dpop_nonce (RFC 9449 §8), or a resource
// server's 401 whose WWW-Authenticate has a DPoP challenge with
// error="use_dpop_nonce" (RFC 9449 §9). Either must carry a valid
// DPoP-Nonce header; without one there is nothing to retry with. body is
// the response body, read (bounded) by the caller; it is only needed for
// a 400.
func UseDPoPNonce(status int, h http.Header, body []byte) (nonce string, ok bool) {
	nonce = h.Get(HeaderDPoPNonce)
	if !ValidDPoPNonce(nonce) {
		return "", false
	}
	switch status {
	case http.StatusBadRequest:
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error == ErrorUseDPoPNonce {
			return nonce, true
		}
	case http.StatusUnauthorized:
		for _, v := range h.Values("WWW-Authenticate") {
			if challengeParam(v, DPoPScheme, "error") == ErrorUseDPoPNonce {
				return nonce, true
			}
		}
	}
	return "", false
}

// challengeParam returns the value of auth-param name of the first
// challenge with scheme (both case-insensitive) in a WWW-Authenticate
// value (RFC 9110 §11.6.1: #challenge, challenge = auth-scheme [ 1*SP (
// token68 / #auth-param ) ]), or "". Parsing stops at the first malformed
// element.
func challengeParam(v, scheme, name string) string {
	var current string // the scheme the params being read belong to
	for i := 0; i < len(v); {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
			i++
		}
		tok, n := readToken(v[i:])
		if n == 0 {
			return ""
		}
		i += n
		j := i
		for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
			j++
		}
		if j >= len(v) || v[j] != '=' {
			current = tok // a new challenge, perhaps with a token68
			i = j + skipToken68(v[j:])
			continue
		}
		i = j + 1
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		var val string
		if i < len(v) && v[i] == '"' {
			var ok bool
			if val, n, ok = readQuoted(v[i:]); !ok {
				return ""
			}
		} else {
			val, n = readToken(v[i:])
		}
		i += n
		if strings.EqualFold(current, scheme) && strings.EqualFold(tok, name) {
			return val
		}
	}
	return ""
}

// skipToken68 returns the length of the token68 (and the blanks after it)
// at the start of s, or 0 when s starts with something else, such as an
// auth-param. A token68 ends at a comma or the end of the value.
func skipToken68(s string) int {
	n := 0
	for n < len(s) && (isToken(s[n:n+1]) || s[n] == '/') && s[n] != '=' {
		n++
	}
	if n == 0 {
		return 0
	}
	for n < len(s) && s[n] == '=' {
		n++
	}
	end := n
	for end < len(s) && (s[end] == ' ' || s[end] == '\t') {
		end++
	}
	if end < len(s) && s[end] != ',' {
		return 0
	}
	return end
}

func readToken(s string) (string, int) {
	n := 0
	for n < len(s) && isToken(s[n:n+1]) {
		n++
	}
	return s[:n], n
}

// readQuoted reads an RFC 9110 quoted-string at the start of s.
func readQuoted(s string) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 >= len(s) {
				return "", 0, false
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}
