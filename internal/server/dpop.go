package server

import (
	"fmt"

	"github.com/cloakroom/cloakroom/internal/aggregate"
	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/proxy"
	"github.com/cloakroom/cloakroom/internal/tokens"
)

// dpopWiring is what oidc.dpop (RFC 9449) adds to a build: the process's
// key, which binds client-credentials and exchanged tokens (cached per
// process), and the memory of the upstreams' nonces, shared by every route
// and composite of the build. Sessions' keys are made at login (package
// bff). The zero value is DPoP off.
type dpopWiring struct {
	key    *oidc.DPoPKey
	nonces *tokens.UpstreamNonces
}

func newDPoP(cfg *config.Config) (dpopWiring, error) {
	if !cfg.OIDC.DPoP {
		return dpopWiring{}, nil
	}
	key, err := oidc.NewDPoPKey()
	if err != nil {
		return dpopWiring{}, fmt.Errorf("oidc.dpop: %w", err)
	}
	return dpopWiring{key: key, nonces: tokens.NewUpstreamNonces()}, nil
}

// tokenType is the token_type the provider's answers must carry: DPoP
// when DPoP is on (any other ends the login or the refresh), else the
// default.
func (d dpopWiring) tokenType() string {
	if d.key == nil {
		return ""
	}
	return oidc.DPoPScheme
}

// proxyNonces and partNonces are nil interfaces when DPoP is off, never
// interfaces holding a nil pointer.
func (d dpopWiring) proxyNonces() proxy.DPoPNonces {
	if d.nonces == nil {
		return nil
	}
	return d.nonces
}

func (d dpopWiring) partNonces() aggregate.DPoPNonces {
	if d.nonces == nil {
		return nil
	}
	return d.nonces
}
