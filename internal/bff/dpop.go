package bff

import (
	"fmt"

	"github.com/cloakroom/cloakroom/internal/oidc"
)

// DPoP at login (RFC 9449 §10), with Options.DPoP: each login attempt
// makes the key its session will hold. The key goes, sealed, into the
// login-attempt cookie; its thumbprint goes into the authorization request
// as dpop_jkt, and a pushed authorization request carries a proof made by
// it, so the provider binds the authorization code to the key and a code
// stolen on its way back cannot be redeemed without it. The callback
// redeems the code with a proof by the same key, and the new session keeps
// the key (session.Session.DPoPKey) to sign its refreshes and its calls to
// the APIs.

// newLoginKey returns a new DPoP key for attempt a and records it in a;
// nil without DPoP.
func (h *Handler) newLoginKey(a *attempt) (*oidc.DPoPKey, error) {
	if !h.dpop {
		return nil, nil
	}
	k, err := oidc.NewDPoPKey()
	if err != nil {
		return nil, err
	}
	if a.DPoPKey, err = k.MarshalBinary(); err != nil {
		return nil, fmt.Errorf("login DPoP key: %w", err)
	}
	return k, nil
}

// loginKey is the DPoP key attempt a was made with, or nil.
func loginKey(a *attempt) (*oidc.DPoPKey, error) {
	if len(a.DPoPKey) == 0 {
		return nil, nil
	}
	return oidc.UnmarshalDPoPKey(a.DPoPKey)
}

// jktOf is k's thumbprint, or "" for no key.
func jktOf(k *oidc.DPoPKey) string {
	if k == nil {
		return ""
	}
	return k.JKT()
}
