package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/server"
)

// TestFAPI2UnfitProvider: with oidc.profile fapi2, serve stops when the
// first discovery finds a provider without PAR (the demo provider).
func TestFAPI2UnfitProvider(t *testing.T) {
	ln, public := listenLocal(t)
	_, srv := demoProvider(t, public, nil)
	cfg := baseConfig(public, srv.URL, "web", "web-secret")
	cfg.OIDC.Profile = config.ProfileFAPI2
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, cfg, server.Options{Listener: ln})
	if !errors.Is(err, oidc.ErrUnfit) || !strings.Contains(err.Error(), "oidc.profile") {
		t.Fatalf("server.Run: %v, want an ErrUnfit error naming oidc.profile", err)
	}
}
