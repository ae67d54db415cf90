package acmetest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestStart starts pebble and its DNS server and checks what the tests use:
// the directory over HTTPS trusted through CAFile, pebble's issuing root,
// and no certificate issued yet.
func TestStart(t *testing.T) {
	s := Start(t, Options{HTTPPort: FreePort(t), TLSPort: FreePort(t)})
	resp, err := s.client.Get(s.Directory)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || dir["newOrder"] == nil {
		t.Errorf("GET %s: got %s %v, want 200 with newOrder", s.Directory, resp.Status, dir)
	}
	if s.CAFile == "" || s.DNS == "" {
		t.Errorf("got CAFile %q, DNS %q, want both", s.CAFile, s.DNS)
	}
	if s.Roots() == nil {
		t.Error("got no roots")
	}
	if got := s.Issued(); len(got) != 0 {
		t.Errorf("got issued %v, want none", got)
	}
}
