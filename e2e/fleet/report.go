package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxSamples bounds the messages kept per scenario for the report.
const maxSamples = 8

// scenario is one phase of the run and what the load saw during it.
type scenario struct {
	name string
	// allow503 is set for the Redis scenarios: while Redis is unreachable
	// the gateway answers 503 (and HAProxy too, once every instance's
	// /readyz says so).
	allow503 bool
	// maxInFlight bounds the requests killed in flight: HAProxy's own
	// 502, 503 or 504 for a request that was sent to the killed instance.
	maxInFlight int

	mu       sync.Mutex
	killed   string // the instance killed by kill -9, once it is
	start    time.Time
	elapsed  time.Duration
	statuses map[string]int
	requests int
	signIns  int
	failed   int // sign-ins that ended in a 503
	lost     int
	inFlight int
	bad      int
	samples  []string
	// lostFrom counts, at the final check, the sessions lost by the
	// scenario they were signed in during.
	lostFrom map[string]int
	// Provider counters over the scenario.
	refreshes, failedGrants, graceReuses int64
}

func newScenario(name string) *scenario {
	return &scenario{name: name, statuses: map[string]int{}, lostFrom: map[string]int{}, start: time.Now()}
}

// record counts one gateway request: by status ("transport error" when
// none came back, "+haproxy" when HAProxy answered itself), and as a
// violation unless the scenario allows it.
func (s *scenario) record(resp *http.Response, err error, req *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if err != nil {
		s.statuses["transport error"]++
		s.badLocked(fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err))
		return
	}
	own := resp.Header.Get(serverHeader) == ""
	key := strconv.Itoa(resp.StatusCode)
	if own {
		key += " haproxy"
	}
	s.statuses[key]++
	code := resp.StatusCode
	switch {
	case code < 400 && !own:
		return
	case code == http.StatusServiceUnavailable && s.allow503:
		return
	case own && s.killed != "" && resp.Header.Get(viaHeader) == s.killed &&
		(code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout):
		s.inFlight++
		return
	}
	via := resp.Header.Get(serverHeader)
	if own {
		via = "haproxy, via " + resp.Header.Get(viaHeader)
	}
	s.badLocked(fmt.Sprintf("%s %s: %d (%s)", req.Method, req.URL.Path, code, via))
}

func (s *scenario) badLocked(msg string) {
	s.bad++
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, msg)
	}
}

// violation records something that breaks the rules outside a status.
func (s *scenario) violation(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badLocked(msg)
}

// lostSession counts a session lost; from is the scenario it was signed
// in during.
func (s *scenario) lostSession(from *scenario, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost++
	if from != nil {
		s.lostFrom[from.name]++
	}
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, "lost session: "+msg)
	}
}

func (s *scenario) signedIn() {
	s.mu.Lock()
	s.signIns++
	s.mu.Unlock()
}

func (s *scenario) signInFailed() {
	s.mu.Lock()
	s.failed++
	s.mu.Unlock()
}

func (s *scenario) setKilled(name string) {
	s.mu.Lock()
	s.killed = name
	s.mu.Unlock()
}

// end closes the scenario: its duration and the provider's counters.
func (s *scenario) end(refreshes, failedGrants, graceReuses int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.elapsed = time.Since(s.start)
	s.refreshes, s.failedGrants, s.graceReuses = refreshes, failedGrants, graceReuses
}

// problems lists the rules the scenario broke: any status or error it does
// not allow, any lost session, more requests killed in flight than there
// were requests in flight, a provider that refused a refresh (the next
// step of a lost session), and a scenario without load.
func (s *scenario) problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p []string
	if s.bad > 0 {
		p = append(p, fmt.Sprintf("%d requests or sign-ins broke the rules", s.bad))
	}
	if s.lost > 0 {
		p = append(p, fmt.Sprintf("%d sessions lost", s.lost))
	}
	if s.inFlight > s.maxInFlight {
		p = append(p, fmt.Sprintf("%d requests failed at the kill, more than the %d that can be in flight", s.inFlight, s.maxInFlight))
	}
	if s.failedGrants > 0 {
		p = append(p, fmt.Sprintf("the provider refused %d token requests", s.failedGrants))
	}
	if s.requests == 0 {
		p = append(p, "no requests")
	}
	return p
}

// statusLine is "200:1234 302:56 503 haproxy:7", codes in order.
func (s *scenario) statusLine() string {
	keys := make([]string, 0, len(s.statuses))
	for k := range s.statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, s.statuses[k])
	}
	return strings.Join(parts, " ")
}

// report prints one row per scenario, then each scenario's problems and
// samples, and the verdict; it returns whether every rule held.
func report(w io.Writer, scs []*scenario) bool {
	fmt.Fprintf(w, "\n%-26s %5s %8s %8s %6s %9s %5s %4s %9s  %s\n",
		"scenario", "secs", "requests", "sign-ins", "failed", "refreshes", "grace", "lost", "in-flight", "statuses")
	total := 0
	lost := 0
	for _, s := range scs {
		s.mu.Lock()
		fmt.Fprintf(w, "%-26s %5.1f %8d %8d %6d %9d %5d %4d %9d  %s\n",
			s.name, s.elapsed.Seconds(), s.requests, s.signIns, s.failed, s.refreshes, s.graceReuses, s.lost, s.inFlight, s.statusLine())
		total += s.requests
		lost += s.lost
		s.mu.Unlock()
	}
	fmt.Fprintf(w, "\nrequests: %d, sessions lost: %d\n", total, lost)
	ok := true
	for _, s := range scs {
		probs := s.problems()
		if len(probs) == 0 {
			continue
		}
		ok = false
		fmt.Fprintf(w, "FAIL %s: %s\n", s.name, strings.Join(probs, "; "))
		s.mu.Lock()
		for _, from := range scs {
			if n := s.lostFrom[from.name]; n > 0 {
				fmt.Fprintf(w, "    %d of the sessions lost were signed in during %s\n", n, from.name)
			}
		}
		for _, m := range s.samples {
			fmt.Fprintf(w, "    %s\n", m)
		}
		s.mu.Unlock()
	}
	if ok {
		fmt.Fprintln(w, "PASS: every scenario held its rules, no session lost")
	}
	return ok
}
