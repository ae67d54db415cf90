package oidc

// The FAPI 2.0 Security Profile (OpenID Foundation, final, February 2025),
// the parts a client checks at discovery and at the callback:
//
//   - §5.3.2.2: pushed authorization requests (RFC 9126) always: a
//     provider without a pushed_authorization_request_endpoint is refused
//     (see par.go);
//   - §5.3.2.2: the iss authorization response parameter (RFC 9207) is
//     checked, so the provider must advertise
//     authorization_response_iss_parameter_supported, and a callback
//     without iss is refused;
//   - §5.4.1: ID tokens signed with PS256, ES256 or EdDSA only: the
//     verifier accepts nothing else, and a provider that offers none of
//     them is refused.
//
// Client authentication (private_key_jwt or mTLS) and sender-constrained
// tokens (DPoP or certificate-bound) are configuration, checked by
// internal/config before a Client is made.

import (
	"errors"
	"fmt"
	"slices"
)

// ProfileFAPI2 is Options.Profile for the FAPI 2.0 Security Profile.
const ProfileFAPI2 = "fapi2"

// ErrUnfit marks a discovery that reached the provider and found that it
// cannot serve the configuration: PAR required without a PAR endpoint, a
// profile the provider's metadata does not meet. Retrying changes nothing
// until the provider's configuration (or ours) does. Errors wrap it with
// %w and name the configuration key.
var ErrUnfit = errors.New("the identity provider does not support what the configuration requires")

// fapi2Algs are the only JWS algorithms of FAPI 2.0 Security Profile §5.4.1.
var fapi2Algs = []string{"PS256", "ES256", "EdDSA"}

// signingAlgs are the ID token algorithms this client may accept, before
// the provider's list narrows them.
func (c *Client) signingAlgs() []string {
	if c.opts.Profile == ProfileFAPI2 {
		return fapi2Algs
	}
	return allowedAlgs
}

// checkProfile refuses metadata that does not meet Options.Profile.
func (c *Client) checkProfile(m *metadata) error {
	if c.opts.Profile != ProfileFAPI2 {
		return nil
	}
	if !m.IssParam {
		return fmt.Errorf("%w: oidc.profile fapi2 requires the iss authorization response parameter (RFC 9207), and the provider does not advertise authorization_response_iss_parameter_supported", ErrUnfit)
	}
	if len(m.Algs) > 0 && !slices.ContainsFunc(m.Algs, func(a string) bool { return slices.Contains(fapi2Algs, a) }) {
		return fmt.Errorf("%w: oidc.profile fapi2 accepts only PS256, ES256 or EdDSA ID token signatures, and the provider offers %q", ErrUnfit, clipAll(m.Algs))
	}
	return nil
}
