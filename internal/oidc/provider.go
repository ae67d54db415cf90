package oidc

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Provider is what the clients of one issuer share: its discovery
// document, fetched once for all of them, and its JWKS, one key set whose
// fetches and refetch limit (KeyRefetchInterval) they share. Several
// frontends that are clients of one provider, each with its own client ID
// and credentials and each signing its own users in, pass one Provider in
// Options.Provider.
//
// Each client still discovers for itself (Discover, Run, Start, Ready):
// it checks the shared document against its own options (PAR, profile,
// userinfo, mutual TLS aliases) and builds its own verifier, whose
// audience is its own client ID. A client that discovers while another
// one's fetch is in flight waits for it; a failed fetch is not kept, so
// the next attempt of any client fetches again; a document fetched once
// is kept for the Provider's life, which is one build of the gateway (a
// reload builds new Providers, and so discovers again).
type Provider struct {
	issuer string

	mu       sync.Mutex
	doc      []byte // nil until a fetch succeeded
	inflight *docFetch
	keys     map[string]*keySet // by jwks_uri
}

type docFetch struct {
	done chan struct{}
	doc  []byte // set before done is closed
	err  error
}

// NewProvider returns the shared state of issuer's clients.
func NewProvider(issuer string) *Provider {
	return &Provider{issuer: issuer, keys: map[string]*keySet{}}
}

// Issuer is the issuer the Provider was made for.
func (p *Provider) Issuer() string { return p.issuer }

// document returns the discovery document: the one fetched, else the
// outcome of a fetch in flight, else of fetch. A caller that gives up
// (ctx) does not cancel a fetch others wait for; the fetch runs under
// the context of the caller that started it.
func (p *Provider) document(ctx context.Context, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	p.mu.Lock()
	if p.doc != nil {
		doc := p.doc
		p.mu.Unlock()
		return doc, nil
	}
	f := p.inflight
	if f == nil {
		f = &docFetch{done: make(chan struct{})}
		p.inflight = f
		p.mu.Unlock()
		f.doc, f.err = fetch(ctx)
		p.mu.Lock()
		if f.err == nil {
			p.doc = f.doc
		}
		p.inflight = nil
		p.mu.Unlock()
		close(f.done)
		return f.doc, f.err
	}
	p.mu.Unlock()
	select {
	case <-f.done:
		return f.doc, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// keySet returns the key set of jwksURL, made with hc and now by the
// first client that asks.
func (p *Provider) keySet(jwksURL string, hc *http.Client, now func() time.Time) *keySet {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.keys[jwksURL]
	if !ok {
		k = newKeySet(jwksURL, hc, now)
		p.keys[jwksURL] = k
	}
	return k
}
