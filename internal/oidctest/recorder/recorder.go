// Package recorder is TEST SUPPORT ONLY: a recording reverse proxy to put in
// front of an OpenID provider that a test runs as a separate process, so
// that the test can see each request as the provider answered it, and
// [Buffer], a log buffer the process writes to while the test reads it.
//
// It is an ordinary (non-_test) package only so that the provider packages
// (dex, hydra) can import it. Production code must never import it.
package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// MaxBody bounds how much of a request or response body the proxy buffers.
const MaxBody = 1 << 20

// Exchange is one request the provider answered through the proxy.
type Exchange struct {
	Method, Path string
	// Query is the URL query; Form the parsed form body of a POST, without
	// the fields the proxy redacts.
	Query, Form url.Values
	// ClientID is the client that authenticated with HTTP Basic, or else
	// the form's client_id (the Basic password is never recorded).
	ClientID string
	// Received is when the proxy received the request, Answered when it had
	// the provider's answer.
	Received, Answered time.Time
	// Status is the provider's answer.
	Status int
	// RefreshToken is the refresh_token of a successful token response,
	// Error the "error" of an OAuth error answer of the token endpoint.
	RefreshToken, Error string
}

// Proxy forwards to a provider and records each exchange. It is safe for
// concurrent use.
type Proxy struct {
	rp        *httputil.ReverseProxy
	tokenPath string
	redact    []string

	mu        sync.Mutex
	exchanges []Exchange
}

// New returns a proxy to target. The answers to tokenPath are read for
// their refresh_token and error; the form fields named in redact (a
// client_secret, a password) are left out of the recorded forms.
func New(target *url.URL, tokenPath string, redact ...string) *Proxy {
	p := &Proxy{tokenPath: tokenPath, redact: redact}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: p.record,
	}
	return p
}

// seen is what ServeHTTP learned of a request before forwarding it.
type seen struct {
	received time.Time
	form     url.Values
}

type seenKey struct{}

// ServeHTTP forwards r to the provider, buffering a POST body (at most
// [MaxBody]) to record its form.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := &seen{received: time.Now()}
	if r.Method == http.MethodPost && r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody))
		if err != nil {
			http.Error(w, "reading the body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if f, err := url.ParseQuery(string(body)); err == nil {
			for _, k := range p.redact {
				f.Del(k)
			}
			s.form = f
		}
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), seenKey{}, s)))
}

// record is the reverse proxy's ModifyResponse: it records the exchange
// resp ends.
func (p *Proxy) record(resp *http.Response) error {
	req := resp.Request
	x := Exchange{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(),
		Status: resp.StatusCode, Answered: time.Now()}
	if s, ok := req.Context().Value(seenKey{}).(*seen); ok {
		x.Received, x.Form = s.received, s.form
		if s.form != nil {
			x.ClientID = s.form.Get("client_id")
		}
	}
	if user, _, ok := req.BasicAuth(); ok {
		if id, err := url.QueryUnescape(user); err == nil {
			x.ClientID = id
		}
	}
	if x.Path == p.tokenPath {
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var tok struct {
			RefreshToken string `json:"refresh_token"`
			Error        string `json:"error"`
		}
		if json.Unmarshal(body, &tok) == nil {
			x.RefreshToken, x.Error = tok.RefreshToken, tok.Error
		}
	}
	p.mu.Lock()
	p.exchanges = append(p.exchanges, x)
	p.mu.Unlock()
	return nil
}

// Exchanges returns a copy of every exchange so far, in order of the
// answers.
func (p *Proxy) Exchanges() []Exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Exchange(nil), p.exchanges...)
}

// Buffer collects a process's output: a bytes.Buffer that is safe for
// concurrent Write and String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
