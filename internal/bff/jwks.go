package bff

import (
	"net/http"

	"github.com/cloakroom/cloakroom/internal/httpx"
)

// JWKSPath is where the public keys of the gateway's client assertions are
// served.
const JWKSPath = "/bff/jwks"

// JWKSMediaType is the media type of a JWK Set (RFC 7517 §8.5.1).
const JWKSMediaType = "application/jwk-set+json"

// jwksMaxAge is how long the provider may cache the key set. A provider
// that meets an unknown kid fetches again (oidc-provider does; RFC 7523
// leaves it to the provider), so a rotation adds the new key to the file
// (second in the JWKS, published but not signing), reloads, waits this
// long, then moves it first.
const jwksMaxAge = "300"

// JWKS serves GET /bff/jwks: jwks, the public JSON Web Key Set of the keys
// the gateway's clients sign their client assertions with
// (oidc.private_key_file, and oidc.service_client.private_key_file), so a
// provider can register the client by jwks_uri. It is built by
// oidc.MergeJWKS from the keys' public halves only: no private member can
// be in it. Without any key (nil jwks) the answer is 404.
//
// Anyone may fetch it: public keys are public, and the provider fetches
// without a session or CSRF header.
func JWKS(jwks []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if jwks == nil {
			httpx.Problem(w, http.StatusNotFound, "no client assertion keys are configured")
			return
		}
		h := w.Header()
		h.Set("Content-Type", JWKSMediaType)
		h.Set("Cache-Control", "public, max-age="+jwksMaxAge)
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(jwks)
	})
}
