package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// post sends a form to the provider with client authentication (see
// authenticate).
func (c *Client) post(ctx context.Context, endpoint string, v url.Values) (*http.Response, error) {
	basic, err := c.authenticate(endpoint, v)
	if err != nil {
		return nil, fmt.Errorf("client authentication: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		req.SetBasicAuth(url.QueryEscape(c.opts.ClientID), url.QueryEscape(c.opts.ClientSecret))
	}
	// POST /bff/token: the SPA's proof, not one of ours (mediate.go).
	m, proof := takeProof(ctx)
	if proof != "" {
		req.Header.Set(HeaderDPoP, proof)
	}
	resp, err := c.hc.Do(req)
	if err == nil {
		m.answered(resp.Header)
	}
	return resp, err
}

// postToken is a token request for grants x/oauth2 cannot express.
func (c *Client) postToken(ctx context.Context, d *discovered, v url.Values) (*oauth2.Token, error) {
	resp, err := c.postDPoP(ctx, d.tokenEndpoint, v)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var tr struct {
		AccessToken  string      `json:"access_token"`
		TokenType    string      `json:"token_type"`
		RefreshToken string      `json:"refresh_token"`
		ExpiresIn    json.Number `json:"expires_in"`
		IDToken      string      `json:"id_token"`
		Scope        string      `json:"scope"`
		Error        string      `json:"error"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		if resp.StatusCode != http.StatusOK {
			return nil, &GrantError{Code: fmt.Sprintf("http_%d", resp.StatusCode), HTTP: resp.StatusCode}
		}
		return nil, fmt.Errorf("token response is not JSON")
	}
	if resp.StatusCode != http.StatusOK || tr.Error != "" {
		code := safeErrorCode(tr.Error) // logged: a code, never a body
		if code == "" {
			code = fmt.Sprintf("http_%d", resp.StatusCode)
		}
		return nil, &GrantError{Code: code, HTTP: resp.StatusCode}
	}
	if tr.AccessToken == "" {
		return nil, fmt.Errorf("token response has no access_token")
	}
	tok := &oauth2.Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType, RefreshToken: tr.RefreshToken}
	if n, err := tr.ExpiresIn.Int64(); err == nil && n > 0 {
		tok.Expiry = c.now().Add(time.Duration(n) * time.Second)
	}
	return tok.WithExtra(map[string]any{"id_token": tr.IDToken, "scope": tr.Scope}), nil
}
