package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

// verifyIDToken checks an ID token (OIDC Core §3.1.3.7): its signature
// with an allow-listed algorithm against the provider's keys, iss, aud,
// azp, sub, exp, iat and nbf (with the clock skew, see checkTimes), the
// nonce when one is expected and the subject when one is known.
//
// A token that fails is refused with an error wrapping ErrUntrusted, except
// when the provider's keys could not be had (the JWKS fetch failed, timed
// out or was rate limited): the signature was then not found bad, only not
// checked, and trying again later may succeed.
func (c *Client) verifyIDToken(ctx context.Context, d *discovered, raw, nonce, subject string) (*Tokens, error) {
	ctx, trouble := withKeySetTrouble(c.ctx(ctx))
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		if trouble.err != nil {
			return nil, fmt.Errorf("id token: %w", trouble.err)
		}
		return nil, fmt.Errorf("id token: %w: %w", ErrUntrusted, err)
	}
	t, err := c.checkIDToken(idt, raw, nonce, subject)
	if err != nil {
		return nil, fmt.Errorf("id token: %w: %w", ErrUntrusted, err)
	}
	return t, nil
}

// checkIDToken checks what go-oidc's Verify leaves to the caller.
func (c *Client) checkIDToken(idt *gooidc.IDToken, raw, nonce, subject string) (*Tokens, error) {
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	var times tokenTimes
	if err := idt.Claims(&times); err != nil {
		return nil, errors.New("exp, iat or nbf is not a number")
	}
	if _, _, err := c.checkTimes(times, true); err != nil {
		return nil, err
	}
	if idt.Subject == "" {
		return nil, errors.New("no sub")
	}
	if subject != "" && idt.Subject != subject {
		return nil, errors.New("subject changed on refresh")
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("nonce mismatch")
	}
	if azp, ok := claims["azp"]; ok {
		if s, _ := azp.(string); s != c.opts.ClientID {
			return nil, errors.New("azp is not our client id")
		}
	} else if len(idt.Audience) > 1 {
		return nil, errors.New("several audiences and no azp")
	}
	sid, _ := claims["sid"].(string)
	return &Tokens{IDToken: raw, Subject: idt.Subject, SID: sid, Claims: claims}, nil
}

// tokenTimes are the time claims of an ID or logout token (RFC 7519 §4.1).
type tokenTimes struct {
	Exp *json.Number `json:"exp"`
	Iat *json.Number `json:"iat"`
	Nbf *json.Number `json:"nbf"`
}

// checkTimes applies the client's clock skew to a token's times, since
// go-oidc's verifier has no leeway (it runs with SkipExpiryCheck): exp may
// have passed by up to the skew, iat and nbf may be up to the skew in the
// future. iat is required; exp is required when needExp. It returns exp
// (zero when absent) and iat.
func (c *Client) checkTimes(t tokenTimes, needExp bool) (exp, iat time.Time, err error) {
	now, skew := c.now(), c.ClockSkew()
	if t.Iat == nil {
		return exp, iat, errors.New("no iat")
	}
	if iat, err = numericDate(*t.Iat); err != nil {
		return exp, iat, fmt.Errorf("iat: %w", err)
	}
	if iat.After(now.Add(skew)) {
		return exp, iat, errors.New("issued in the future")
	}
	switch {
	case t.Exp != nil:
		if exp, err = numericDate(*t.Exp); err != nil {
			return exp, iat, fmt.Errorf("exp: %w", err)
		}
		if now.After(exp.Add(skew)) {
			return exp, iat, errors.New("expired")
		}
	case needExp:
		return exp, iat, errors.New("no exp")
	}
	if t.Nbf != nil {
		nbf, err := numericDate(*t.Nbf)
		if err != nil {
			return exp, iat, fmt.Errorf("nbf: %w", err)
		}
		if nbf.After(now.Add(skew)) {
			return exp, iat, errors.New("not valid yet (nbf)")
		}
	}
	return exp, iat, nil
}

// maxNumericDate bounds the seconds of a NumericDate, far beyond any real
// one, so the conversion to time.Time cannot overflow.
const maxNumericDate = 1 << 40

// numericDate reads a JSON NumericDate: seconds since the epoch, possibly
// with a fraction.
func numericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return time.Time{}, errors.New("not a NumericDate")
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), nil
}

// keySetTroubleKey carries a *keySetTrouble through one verification.
type keySetTroubleKey struct{}

// keySetTrouble records why the key set could not give a verification the
// keys it needed.
type keySetTrouble struct{ err error }

func withKeySetTrouble(ctx context.Context) (context.Context, *keySetTrouble) {
	t := &keySetTrouble{}
	return context.WithValue(ctx, keySetTroubleKey{}, t), t
}

// noteKeySetTrouble tells the verification running under ctx, if it asked,
// that the keys could not be had. go-oidc formats the key set's errors
// with %v, so this is the only way the cause gets back.
func noteKeySetTrouble(ctx context.Context, err error) {
	if t, ok := ctx.Value(keySetTroubleKey{}).(*keySetTrouble); ok {
		t.err = err
	}
}
