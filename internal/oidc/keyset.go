package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// KeyRefetchInterval is the least time between two fetches of the
// provider's JWKS. Keys are fetched on first use and again when a token
// names a key id that is not cached (key rotation, OIDC Core §10.1.1), but a
// token with an unknown key id that arrives sooner after the last fetch is
// refused without one: otherwise anyone able to post a logout token with a
// random kid could make the gateway fetch the JWKS once per request.
const KeyRefetchInterval = 10 * time.Second

// minRSABits is the smallest RSA modulus accepted from the JWKS.
const minRSABits = 2048

var errRefetchLimited = fmt.Errorf("unknown signing key, and the key set was fetched less than %s ago", KeyRefetchInterval)

// keySet is the go-oidc KeySet the verifier uses in place of go-oidc's own
// RemoteKeySet, which refetches the JWKS for every token with an unknown kid,
// quotes the provider's response body in its errors and keeps any key type
// go-jose can parse.
//
// keySet verifies compact JWS only, with an allow-listed algorithm, against
// public RSA (>= 2048 bits), EC and Ed25519 keys of the JWKS whose use is
// "sig" or unset and whose alg, when set, is the token's. Key material in
// the token's own header (jwk, jku, x5u, x5c) is never looked at. Other JWKS
// entries (unknown kty, symmetric keys, encryption keys, malformed members)
// are ignored (RFC 7517 §5). Refetches are limited as KeyRefetchInterval
// says, measured with the client's clock; concurrent callers share one
// fetch, which a caller that gives up does not cancel.
type keySet struct {
	url      string
	hc       *http.Client
	now      func() time.Time
	interval time.Duration

	mu       sync.Mutex
	keys     []jose.JSONWebKey
	gen      uint64    // counts successful fetches
	tried    bool      // a fetch was started at least once
	last     time.Time // when the last fetch was started
	inflight *keyFetch
}

type keyFetch struct {
	done chan struct{}
	err  error // set before done is closed
}

func newKeySet(url string, hc *http.Client, now func() time.Time) *keySet {
	return &keySet{url: url, hc: hc, now: now, interval: KeyRefetchInterval}
}

var joseAllowedAlgs = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(allowedAlgs))
	for i, a := range allowedAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// VerifySignature implements gooidc.KeySet. The verifier has already checked
// the algorithm against its own list; this checks it again.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, joseAllowedAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed jws: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not exactly one signature")
	}
	h := jws.Signatures[0].Protected
	// go-jose understands the b64 extension; ID and logout tokens never use
	// it, and nothing here should depend on a header the issuer did not need.
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, errors.New("crit header not accepted")
	}
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return nil, errors.New("b64 header not accepted")
	}
	keys, gen := k.cached()
	if p, ok := verifyWith(jws, keys, h.KeyID, h.Algorithm); ok {
		return p, nil
	}
	if h.KeyID != "" && slices.ContainsFunc(keys, func(key jose.JSONWebKey) bool { return key.KeyID == h.KeyID }) {
		// A known key that does not verify is a bad signature, not a
		// rotation: fetching again would not help.
		return nil, errors.New("signature does not verify")
	}
	if err := k.refetch(ctx, gen); err != nil {
		noteKeySetTrouble(ctx, err)
		return nil, err
	}
	keys, _ = k.cached()
	if p, ok := verifyWith(jws, keys, h.KeyID, h.Algorithm); ok {
		return p, nil
	}
	return nil, errors.New("no key of the provider verifies the signature")
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid, alg string) ([]byte, bool) {
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != alg {
			continue
		}
		if p, err := jws.Verify(key.Key); err == nil {
			return p, true
		}
	}
	return nil, false
}

func (k *keySet) cached() ([]jose.JSONWebKey, uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.gen
}

// refetch makes sure the key set was fetched after the caller read
// generation seen, unless the rate limit forbids it.
func (k *keySet) refetch(ctx context.Context, seen uint64) error {
	k.mu.Lock()
	if k.gen != seen {
		// Fetched since the caller looked: try those keys.
		k.mu.Unlock()
		return nil
	}
	f := k.inflight
	if f == nil {
		now := k.now()
		// A clock that went back does not block fetching for good.
		if k.tried && !now.Before(k.last) && now.Sub(k.last) < k.interval {
			k.mu.Unlock()
			return errRefetchLimited
		}
		k.tried, k.last = true, now
		f = &keyFetch{done: make(chan struct{})}
		k.inflight = f
		// The fetch is shared: a caller that goes away must not cancel it
		// for the others; the HTTP client's timeout bounds it.
		go k.run(context.WithoutCancel(ctx), f)
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *keySet) run(ctx context.Context, f *keyFetch) {
	keys, err := k.fetch(ctx)
	k.mu.Lock()
	if err == nil {
		k.keys = keys
		k.gen++
	}
	k.inflight = nil
	k.mu.Unlock()
	f.err = err
	close(f.done)
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("key set request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch key set: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read key set: %w", err)
	}
	// The body is the provider's: it may be logged elsewhere, never quoted.
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("key set endpoint answered %d", resp.StatusCode)
	}
	keys, err := parseKeySet(body)
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// parseKeySet keeps the usable signature verification keys of a JWKS.
func parseKeySet(body []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("key set is not a JSON web key set")
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if key.Algorithm != "" && !slices.Contains(allowedAlgs, key.Algorithm) {
			continue
		}
		switch pub := key.Key.(type) {
		case *rsa.PublicKey:
			if pub.N == nil || pub.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			// Symmetric keys, private keys published by mistake, key
			// types we do not verify with.
			continue
		}
		if !key.Valid() {
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("key set has no usable signature key")
	}
	return keys, nil
}
