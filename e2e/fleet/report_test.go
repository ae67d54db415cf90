package main

import (
	"errors"
	"net/http"
	"testing"
)

// TestRecordRules: which answers each kind of scenario lets pass, counts
// as killed in flight, or counts against it.
func TestRecordRules(t *testing.T) {
	answer := func(code int, server, via string) *http.Response {
		h := http.Header{}
		if server != "" {
			h.Set(serverHeader, server)
		}
		h.Set(viaHeader, via)
		return &http.Response{StatusCode: code, Header: h}
	}
	tests := []struct {
		name     string
		allow503 bool
		killed   string
		resp     *http.Response
		err      error
		bad      int
		inFlight int
	}{
		{"200 from an instance", false, "", answer(200, "c0", "c0"), nil, 0, 0},
		{"302 from an instance", false, "", answer(302, "c1", "c1"), nil, 0, 0},
		{"401", false, "", answer(401, "c0", "c0"), nil, 1, 0},
		{"500", true, "", answer(500, "c0", "c0"), nil, 1, 0},
		{"503 from an instance, steady", false, "", answer(503, "c0", "c0"), nil, 1, 0},
		{"503 from an instance, Redis down", true, "", answer(503, "c0", "c0"), nil, 0, 0},
		{"503 from haproxy, Redis down", true, "", answer(503, "", "<NOSRV>"), nil, 0, 0},
		{"502 from haproxy, Redis down", true, "", answer(502, "", "c0"), nil, 1, 0},
		{"502 from haproxy via the killed instance", false, "c1", answer(502, "", "c1"), nil, 0, 1},
		{"502 from haproxy via another instance", false, "c1", answer(502, "", "c2"), nil, 1, 0},
		{"502 from the killed instance itself", false, "c1", answer(502, "c1", "c1"), nil, 1, 0},
		{"200 from haproxy", false, "", answer(200, "", "<NOSRV>"), nil, 1, 0},
		{"transport error", true, "c1", nil, errors.New("connection reset"), 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := newScenario("test")
			sc.allow503 = tt.allow503
			sc.setKilled(tt.killed)
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/bff/user", nil)
			sc.record(tt.resp, tt.err, req)
			if sc.bad != tt.bad || sc.inFlight != tt.inFlight || sc.requests != 1 {
				t.Errorf("got bad %d, in flight %d, requests %d; want %d, %d, 1", sc.bad, sc.inFlight, sc.requests, tt.bad, tt.inFlight)
			}
		})
	}
}

// TestProblems: a scenario fails on a lost session, on more requests
// killed in flight than it allows, on a refused token request and when
// it saw no load.
func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		set  func(*scenario)
		want int
	}{
		{"clean", func(s *scenario) {}, 0},
		{"lost session", func(s *scenario) { s.lostSession(nil, "x") }, 1},
		{"in flight within bound", func(s *scenario) { s.maxInFlight, s.inFlight = 2, 2 }, 0},
		{"in flight beyond bound", func(s *scenario) { s.maxInFlight, s.inFlight = 2, 3 }, 1},
		{"refused token request", func(s *scenario) { s.end(0, 1, 0) }, 1},
		{"no load", func(s *scenario) { s.requests = 0 }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := newScenario("test")
			sc.requests = 1
			tt.set(sc)
			if got := sc.problems(); len(got) != tt.want {
				t.Errorf("got %d problems %v, want %d", len(got), got, tt.want)
			}
		})
	}
}
