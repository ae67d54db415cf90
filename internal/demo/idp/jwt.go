package idp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// reservedClaims are set by the provider and never taken from User.Claims.
var reservedClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true,
	"nonce": true, "azp": true, "auth_time": true, "sid": true, "acr": true, "amr": true,
	"at_hash": true, "c_hash": true, "scope": true, "client_id": true, "act": true,
	"may_act": true, "cnf": true, "events": true, "typ": true,
}

// scopeClaims are the OIDC standard claims each scope releases (OIDC Core 5.4).
var scopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
		"profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// standardClaims holds every claim of scopeClaims.
var standardClaims = func() map[string]bool {
	m := make(map[string]bool)
	for _, cs := range scopeClaims {
		for _, c := range cs {
			m[c] = true
		}
	}
	return m
}()

func claimsSupported() []string {
	cs := []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid", "at_hash"}
	for _, s := range slices.Sorted(maps.Keys(scopeClaims)) {
		cs = append(cs, scopeClaims[s]...)
	}
	return cs
}

// userClaims returns u's claims released by scopes: the standard claims of
// each granted scope, and every custom claim.
func userClaims(u *User, scopes []string) map[string]any {
	out := make(map[string]any)
	for k, v := range u.Claims {
		if !standardClaims[k] {
			out[k] = v
		}
	}
	for _, s := range scopes {
		for _, c := range scopeClaims[s] {
			if v, ok := u.Claims[c]; ok {
				out[c] = v
			}
		}
	}
	if slices.Contains(scopes, "profile") {
		if _, ok := out["preferred_username"]; !ok {
			out["preferred_username"] = u.Username
		}
	}
	return out
}

// customClaims returns u's claims that are not OIDC standard claims
// (role, groups, ...), for access tokens.
func customClaims(u *User) map[string]any {
	out := make(map[string]any)
	for k, v := range u.Claims {
		if !standardClaims[k] {
			out[k] = v
		}
	}
	return out
}

// sign serializes claims as a compact JWS with the given typ header.
func (p *Provider) sign(typ string, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("idp: marshal claims: %w", err)
	}
	jws, err := p.signers[typ].Sign(payload)
	if err != nil {
		return "", fmt.Errorf("idp: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// parseJWT verifies a token's signature against p's key, its typ header and
// its issuer, and returns its claims. It does not check expiry.
func (p *Provider) parseJWT(token, typ string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if h.KeyID != p.keyID {
		return nil, fmt.Errorf("unknown key id %q", h.KeyID)
	}
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); got != typ {
		return nil, fmt.Errorf("token type %q, want %q", got, typ)
	}
	payload, err := jws.Verify(&p.key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if iss, _ := claims["iss"].(string); iss != p.issuer {
		return nil, fmt.Errorf("issuer %q, want %q", iss, p.issuer)
	}
	return claims, nil
}

// audienceClaim is a single audience as a string, several as an array.
func audienceClaim(aud []string) any {
	if len(aud) == 1 {
		return aud[0]
	}
	return aud
}

// audiences reads an aud claim that is a string or an array of strings.
func audiences(claims map[string]any) []string {
	switch v := claims["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, a := range v {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// atHash is the OIDC at_hash of an RS256-signed access token.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// accessClaims are the claims of a new access token (RFC 9068).
type accessClaims struct {
	sub, clientID, sid string
	aud                []string
	scopes             []string
	user               *User // nil for client credentials
	authTime           time.Time
	act                map[string]any
}

func (p *Provider) accessTokenClaims(c accessClaims, jti string, now time.Time) map[string]any {
	claims := map[string]any{}
	if c.user != nil {
		maps.Copy(claims, customClaims(c.user))
	}
	maps.Copy(claims, map[string]any{
		"iss":       p.issuer,
		"sub":       c.sub,
		"aud":       audienceClaim(c.aud),
		"client_id": c.clientID,
		"iat":       now.Unix(),
		"exp":       now.Add(p.accessTTL).Unix(),
		"jti":       jti,
	})
	if len(c.scopes) > 0 {
		claims["scope"] = joinScopes(c.scopes)
	}
	if c.sid != "" {
		claims["sid"] = c.sid
	}
	if !c.authTime.IsZero() {
		claims["auth_time"] = c.authTime.Unix()
	}
	if c.act != nil {
		claims["act"] = c.act
	}
	return claims
}

func (p *Provider) idTokenClaims(u *User, clientID, sid, nonce string, scopes []string, authTime, now time.Time, accessToken string) map[string]any {
	claims := userClaims(u, scopes)
	maps.Copy(claims, map[string]any{
		"iss":       p.issuer,
		"sub":       u.Subject,
		"aud":       []string{clientID},
		"azp":       clientID,
		"iat":       now.Unix(),
		"exp":       now.Add(p.idTTL).Unix(),
		"auth_time": authTime.Unix(),
		"sid":       sid,
		"at_hash":   atHash(accessToken),
	})
	if nonce != "" {
		claims["nonce"] = nonce
	}
	return claims
}
