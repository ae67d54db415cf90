package tokens_test

import (
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"github.com/cloakroom/cloakroom/internal/session"
	"github.com/cloakroom/cloakroom/internal/tokens"
	"github.com/google/go-cmp/cmp"
)

// TestApplyClaims: a new ID token replaces the session's claims, unless its
// userinfo call was missed: then its claims go over the old ones, so the
// userinfo claims of the last good call stay.
func TestApplyClaims(t *testing.T) {
	old := map[string]any{"sub": "alice", "email": "alice@example.com", "groups": []any{"admins"}, "exp": float64(1)}
	tests := []struct {
		name string
		t    oidc.Tokens
		want map[string]any
	}{
		{"no id token", oidc.Tokens{AccessToken: "at"}, old},
		{"new id token", oidc.Tokens{AccessToken: "at", IDToken: "id", Claims: map[string]any{"sub": "alice", "exp": float64(2)}},
			map[string]any{"sub": "alice", "exp": float64(2)}},
		{"new id token, userinfo missed", oidc.Tokens{AccessToken: "at", IDToken: "id", UserInfoMissed: true, Claims: map[string]any{"sub": "alice", "exp": float64(2), "name": "Alice"}},
			map[string]any{"sub": "alice", "email": "alice@example.com", "groups": []any{"admins"}, "exp": float64(2), "name": "Alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &session.Session{IDToken: "old-id", Claims: old}
			tokens.Apply(s, &tt.t, time.Now())
			if diff := cmp.Diff(tt.want, s.Claims); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			if old["exp"] != float64(1) || len(old) != 4 {
				t.Errorf("Apply changed the old claims map: %v", old)
			}
		})
	}
}
