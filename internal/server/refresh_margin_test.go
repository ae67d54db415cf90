package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/demo/idp"
)

// TestRefreshFallbackMargin: while a due refresh cannot run (here the
// provider is down; in a Redis failover the refresh lock or the save of
// its result fails), the current access token is forwarded only while it
// has more than a couple of seconds left. expires_in counts whole seconds
// from when the provider issued it, so in its last second the token may
// already be expired for the API, which would answer 401 where the
// gateway must answer 503.
func TestRefreshFallbackMargin(t *testing.T) {
	e := newSharedClockEnv(t, func(o *idp.Options) { o.AccessTokenTTL = time.Minute }, nil)
	b := newBrowser(t)
	e.login(t, b, "alice")
	e.idp.SetDown(true)
	e.g.Clock.Advance(50 * time.Second) // due (refresh_before is capped at half the lifetime), 10 s left
	if r := b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("provider down, token with 10 s left: got %d, want 200", r.StatusCode)
	}
	e.g.Clock.Advance(9500 * time.Millisecond) // half a second left
	n := len(e.up.Requests())
	if r := b.get(e.g.URL+"/api/orders/x", "X-CSRF", "1"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("provider down, token with half a second left: got %d, want 503", r.StatusCode)
	}
	if got := len(e.up.Requests()) - n; got != 0 {
		t.Errorf("upstream called %d times with a token in its last second, want 0", got)
	}
	if r := b.get(e.g.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("session after the refused call: got %d, want 200", r.StatusCode)
	}
}
