package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// metadata is the part of the discovery document Cloakroom uses.
type metadata struct {
	Issuer     string   `json:"issuer"`
	AuthURL    string   `json:"authorization_endpoint"`
	TokenURL   string   `json:"token_endpoint"`
	JWKSURL    string   `json:"jwks_uri"`
	EndSession string   `json:"end_session_endpoint"`
	Revocation string   `json:"revocation_endpoint"`
	UserInfo   string   `json:"userinfo_endpoint"` // checked by userInfoEndpoint
	IssParam   bool     `json:"authorization_response_iss_parameter_supported"`
	Algs       []string `json:"id_token_signing_alg_values_supported"`
	PKCE       []string `json:"code_challenge_methods_supported"`
	// PARURL and RequirePAR are RFC 9126 §5; checked by parEndpoint.
	PARURL     string `json:"pushed_authorization_request_endpoint"`
	RequirePAR bool   `json:"require_pushed_authorization_requests"`
}

// fetchMetadata reads and checks the discovery document. Its errors name
// what is wrong, never quote the body (go-oidc's NewProvider does, which is
// why it is not used).
// With Options.Provider, the document is the one the provider's clients
// share (fetched once); each client checks it for itself.
func (c *Client) fetchMetadata(ctx context.Context) (*metadata, error) {
	var body []byte
	var err error
	if p := c.opts.Provider; p != nil {
		body, err = p.document(ctx, c.fetchDocument)
	} else {
		body, err = c.fetchDocument(ctx)
	}
	if err != nil {
		return nil, err
	}
	if c.opts.ClientCertificate != nil {
		if body, err = applyMTLSAliases(body, strings.HasPrefix(c.opts.Issuer, "https://")); err != nil {
			return nil, err
		}
	}
	var m metadata
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errors.New("metadata is not a JSON object of the expected shape")
	}
	if m.Issuer != c.opts.Issuer {
		return nil, fmt.Errorf("the provider names its issuer %q, not the configured one", clip(m.Issuer))
	}
	secure := strings.HasPrefix(c.opts.Issuer, "https://")
	for _, e := range []struct {
		name, value string
		required    bool
	}{
		{"authorization_endpoint", m.AuthURL, true},
		{"token_endpoint", m.TokenURL, true},
		{"jwks_uri", m.JWKSURL, true},
		{"end_session_endpoint", m.EndSession, false},
		{"revocation_endpoint", m.Revocation, false},
	} {
		if e.value == "" {
			if e.required {
				return nil, fmt.Errorf("metadata has no %s", e.name)
			}
			continue
		}
		if err := checkEndpoint(e.value, secure); err != nil {
			return nil, fmt.Errorf("%s: %w", e.name, err)
		}
	}
	return &m, nil
}

// fetchDocument reads the discovery document of the issuer.
func (c *Client) fetchDocument(ctx context.Context) ([]byte, error) {
	wellKnown := strings.TrimSuffix(c.opts.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("provider answered %d", resp.StatusCode)
	}
	return body, nil
}

// checkEndpoint accepts absolute http(s) URLs without user info, https only
// when the issuer is https.
func checkEndpoint(s string, secure bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && !secure:
	default:
		return fmt.Errorf("scheme %q not accepted", clip(u.Scheme))
	}
	if u.Host == "" || u.User != nil {
		return errors.New("not an absolute URL without user info")
	}
	return nil
}

// clip shortens a value taken from a provider's answer before it goes into
// an error message.
func clip(s string) string {
	const limit = 100
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}

func clipAll(ss []string) []string {
	const limit = 10
	out := make([]string, 0, min(len(ss), limit+1))
	for i, s := range ss {
		if i == limit {
			out = append(out, "…")
			break
		}
		out = append(out, clip(s))
	}
	return out
}
