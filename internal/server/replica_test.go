package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/redistest"
)

// TestRedisReplicaLost: on a Redis with a replica, a sign-in whose session
// no replica acknowledges answers 503, sets no session cookie, revokes its
// tokens and leaves no session; sessions made before keep working.
func TestRedisReplicaLost(t *testing.T) {
	rs := redistest.Start(t)
	replica := redistest.StartReplica(t, rs)
	a, _, p, _ := twoInstances(t, rs, time.Hour)

	br := newBrowser(t)
	(&env{g: a, idp: p}).login(t, br, "alice")
	if r := br.get(a.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Fatalf("session with a replica: %d", r.StatusCode)
	}

	replica.Stop()
	before := p.Stats().Revocations
	late := newBrowser(t)
	r := (&env{g: a, idp: p}).login(t, late, "bob")
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("login without a replica: got %d, want 503; logs:\n%s", r.StatusCode, a.Logs)
	}
	for _, c := range r.Cookies() {
		if c.Name == "__Host-Http-cloakroom" && c.MaxAge >= 0 {
			t.Errorf("login without a replica set the session cookie")
		}
	}
	if r := late.get(a.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after a login without a replica: got %d, want 401", r.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Revocations == before {
		if time.Now().After(deadline) {
			t.Fatal("the tokens of the unsaved session were not revoked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reads need no replica: the earlier session still answers.
	if r := br.get(a.URL+"/bff/user", "X-CSRF", "1"); r.StatusCode != http.StatusOK {
		t.Errorf("earlier session without a replica: got %d, want 200", r.StatusCode)
	}
}
