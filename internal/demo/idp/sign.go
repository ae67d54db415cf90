package idp

// SignClaims signs arbitrary claims with the provider's key as a logout
// token (typ logout+jwt). It exists so tests can build malformed but
// correctly signed tokens; the provider itself never calls it.
func (p *Provider) SignClaims(claims map[string]any) (string, error) {
	return p.sign(typeLogoutToken, claims)
}
