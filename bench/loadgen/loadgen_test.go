package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/config"
)

// TestLoadSmoke builds cloakroom and loadgen and runs the whole load
// benchmark in --quick mode. It is opt-in (CLOAKROOM_LOAD_SMOKE=1).
func TestLoadSmoke(t *testing.T) {
	if os.Getenv("CLOAKROOM_LOAD_SMOKE") != "1" {
		t.Skip("opt-in: this is a benchmark, not a test (about 20s of load on every core); set CLOAKROOM_LOAD_SMOKE=1 to run it")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	for name, pkg := range map[string]string{
		"cloakroom": "github.com/cloakroom/cloakroom/cmd/cloakroom",
		"loadgen":   "github.com/cloakroom/cloakroom/bench/loadgen",
	} {
		if out, err := exec.CommandContext(ctx, goBin, "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	out := filepath.Join(dir, "results")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "loadgen"), "--quick", "--wait-idle", "0", "--cloakroom", filepath.Join(dir, "cloakroom"), "--out", out)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("loadgen: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	t.Logf("\n%s", &stdout)

	raw, err := os.ReadFile(filepath.Join(out, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, sc := range quickScenarios {
		for _, tg := range allTargets {
			if scenarioByName(sc).runsOn(tg) {
				want++
			}
		}
	}
	if len(rep.Results) != want {
		t.Fatalf("%d results, want one per scenario and target (%d)", len(rep.Results), want)
	}
	for _, r := range rep.Results {
		if r.Skipped != "" {
			if r.Target != targetRedis || os.Getenv("CLOAKROOM_REQUIRE_INTEGRATION") == "1" {
				t.Errorf("%s on %s skipped: %s", r.Scenario, r.Target, r.Skipped)
			}
			continue
		}
		if r.Requests <= 0 || r.Errors != 0 {
			t.Errorf("%s on %s: %d requests, %d errors (first: %s); want >0 and 0", r.Scenario, r.Target, r.Requests, r.Errors, r.FirstError)
		}
		if r.CPUMicrosPerReq <= 0 {
			t.Errorf("%s on %s: no CPU measured for the target process", r.Scenario, r.Target)
		}
	}
}

func TestParseList(t *testing.T) {
	got, err := parseList(" sse,small,,small , login", scenarioNames(), "scenario")
	if err != nil || !slices.Equal(got, []string{"small", "sse", "login"}) {
		t.Errorf("parseList = %v, %v; want [small sse login] in the run's order, without repeats", got, err)
	}
	if _, err := parseList("small,smal", scenarioNames(), "scenario"); err == nil || !strings.Contains(err.Error(), `"smal"`) {
		t.Errorf("an unknown scenario gave %v, want an error naming it", err)
	}
	if _, err := parseList(" , ", allTargets, "target"); err == nil {
		t.Error("an empty list gave no error")
	}
}

func TestParseOptions(t *testing.T) {
	for _, c := range []struct {
		args      []string
		scenarios []string
		rounds    int
		workers   int
		duration  time.Duration
	}{
		{nil, scenarioNames(), 3, 32, 5 * time.Second},
		{[]string{"--scenarios", "all"}, scenarioNames(), 3, 32, 5 * time.Second},
		{[]string{"--quick"}, quickScenarios, 1, 8, 3 * time.Second},
		// Flags given with --quick win over its defaults.
		{[]string{"--quick", "--scenarios", "large,small-256", "--rounds", "2", "--workers", "4", "--duration", "2s"}, []string{"small-256", "large"}, 2, 4, 2 * time.Second},
	} {
		o, err := parseOptions(append([]string{"--cloakroom", "/bin/true"}, c.args...), io.Discard)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if !slices.Equal(o.Scenarios, c.scenarios) || o.Rounds != c.rounds || o.Workers != c.workers || o.Duration != c.duration {
			t.Errorf("%v: scenarios %v, rounds %d, workers %d, duration %v; want %v, %d, %d, %v",
				c.args, o.Scenarios, o.Rounds, o.Workers, o.Duration, c.scenarios, c.rounds, c.workers, c.duration)
		}
	}
	if _, err := parseOptions([]string{"--scenarios", "small", "--targets", "cloakroom-memory"}, io.Discard); err == nil {
		t.Error("a Cloakroom target without --cloakroom gave no error")
	}
	if _, err := parseOptions([]string{"--scenarios", "login", "--targets", "direct,bare"}, io.Discard); err == nil {
		t.Error("a scenario that runs on none of the targets gave no error")
	}
	o, err := parseOptions([]string{"--scenarios", "small-256,login,composite-4"}, io.Discard)
	if err == nil {
		t.Errorf("Cloakroom scenarios without --cloakroom gave no error (%v)", o.Scenarios)
	}
	o, err = parseOptions([]string{"--scenarios", "small-256,login", "--targets", "direct,bare"}, io.Discard)
	if err != nil || o.workers(scenarioByName("small-256")) != 256 || o.workers(scenarioByName("small")) != 32 || o.workers(scenarioByName("login")) != 8 {
		t.Errorf("workers per scenario: %v", err)
	}
}

func TestScenarioTargets(t *testing.T) {
	for _, c := range []struct {
		scenario string
		targets  []string
	}{
		{"small", allTargets},
		{"sse", allTargets},
		{"composite-4", []string{targetMemory}},
		{"small-20fe", []string{targetBare, targetMemory}},
		{"login", []string{targetMemory, targetFile, targetRedis}},
	} {
		var got []string
		for _, tg := range allTargets {
			if scenarioByName(c.scenario).runsOn(tg) {
				got = append(got, tg)
			}
		}
		if !slices.Equal(got, c.targets) {
			t.Errorf("%s runs on %v, want %v", c.scenario, got, c.targets)
		}
	}
}

func TestMedianAndRange(t *testing.T) {
	for _, c := range []struct {
		xs     []float64
		median float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.xs); got != c.median {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.median)
		}
	}
	if got := minMax([]float64{2, 7, 1, 5}); got != [2]float64{1, 7} {
		t.Errorf("minMax = %v, want [1 7]", got)
	}
	rs := []*targetResult{{Round: 1, CPUMicrosPerReq: 40}, {Round: 2, CPUMicrosPerReq: 10}, {Round: 3, CPUMicrosPerReq: 30}, {Round: 4, CPUMicrosPerReq: 20}}
	if got := medianRun(rs); got.Round != 4 {
		t.Errorf("medianRun picked round %d, want 4 (the lower middle of 10 20 30 40)", got.Round)
	}
	if rs[0].Round != 1 {
		t.Error("medianRun reordered its argument")
	}
}

// measured is a measurement for the summary tests.
func measured(scenario, target string, round int, cpu float64) *targetResult {
	return &targetResult{Scenario: scenario, Target: target, Round: round, Requests: 1000, CPUMicrosPerReq: cpu}
}

func TestSummarize(t *testing.T) {
	all := []*targetResult{
		measured("small", targetBare, 1, 50), measured("small", targetMemory, 1, 110),
		measured("small", targetBare, 2, 60), measured("small", targetMemory, 2, 150),
		measured("small", targetBare, 3, 40), measured("small", targetMemory, 3, 100),
		measured("sse", targetBare, 1, 200), measured("sse", targetMemory, 1, 300),
		{Scenario: "sse", Target: targetRedis, Round: 1, Skipped: "no redis"},
	}
	all[3].Errors, all[3].FirstError = 2, "status 502"
	rs := summarize([]string{"small", "sse"}, []string{targetBare, targetMemory, targetRedis}, all)
	if len(rs) != 5 {
		t.Fatalf("%d rows, want 5 (small: bare, memory; sse: bare, memory, redis skipped)", len(rs))
	}
	mem := rs[1]
	// Ratios per round: 2.2, 2.5, 2.5; CPU: 110 (median), 100, 150.
	if mem.Round != 1 || mem.CPUMicrosPerReq != 110 || mem.CPURange != [2]float64{100, 150} || mem.Rounds != 3 {
		t.Errorf("memory row: round %d, %v µs, range %v, %d rounds; want round 1, 110, [100 150], 3", mem.Round, mem.CPUMicrosPerReq, mem.CPURange, mem.Rounds)
	}
	if d := mem.RatioToBare - 2.5; d < -1e-9 || d > 1e-9 || mem.RatioRange[0] != 2.2 || mem.RatioRange[1] != 2.5 {
		t.Errorf("memory × bare %v, range %v; want the median of the rounds' ratios 2.5, range [2.2 2.5]", mem.RatioToBare, mem.RatioRange)
	}
	if mem.Errors != 2 || mem.FirstError != "status 502" {
		t.Errorf("memory row: %d errors, want round 2's 2", mem.Errors)
	}
	if rs[0].RatioToBare != 1 || rs[0].CPUMicrosPerReq != 50 {
		t.Errorf("bare row: %v µs, × %v; want 50 and 1", rs[0].CPUMicrosPerReq, rs[0].RatioToBare)
	}
	if rs[3].RatioToBare != 1.5 || rs[4].Skipped == "" {
		t.Errorf("sse rows: memory × %v (want 1.5), redis skipped %q", rs[3].RatioToBare, rs[4].Skipped)
	}
}

func TestAggregationOf(t *testing.T) {
	if aggregationOf([]*targetResult{measured("small", targetMemory, 1, 100)}) != nil {
		t.Error("an aggregation without composite runs")
	}
	all := []*targetResult{
		measured("small", targetMemory, 1, 100), measured("composite-1", targetMemory, 1, 130), measured("composite-4", targetMemory, 1, 190),
		measured("small", targetMemory, 2, 90), measured("composite-1", targetMemory, 2, 120), measured("composite-4", targetMemory, 2, 210),
		measured("composite-1", targetMemory, 3, 140), measured("composite-4", targetMemory, 3, 200),
	}
	a := aggregationOf(all)
	// Per extra part: 20, 30, 20; composite-1 − small: 30, 30.
	if a == nil || a.Rounds != 3 || a.PerExtraPart != 20 || a.PerExtraPartRange != [2]float64{20, 30} || a.OverSmall != 30 || a.Composite1 != 130 || a.Composite4 != 200 {
		t.Errorf("aggregation = %+v", a)
	}
}

func TestFrontendsCostOf(t *testing.T) {
	if frontendsCostOf([]*targetResult{measured("small", targetMemory, 1, 100)}) != nil {
		t.Error("a comparison without small-20fe runs")
	}
	all := []*targetResult{
		measured("small", targetBare, 1, 80), measured("small", targetMemory, 1, 100),
		measured("small-20fe", targetBare, 1, 80), measured("small-20fe", targetMemory, 1, 104),
		measured("small", targetBare, 2, 100), measured("small", targetMemory, 2, 120),
		measured("small-20fe", targetBare, 2, 100), measured("small-20fe", targetMemory, 2, 118),
		measured("small", targetBare, 3, 90), measured("small", targetMemory, 3, 110),
		measured("small-20fe", targetMemory, 3, 111),
	}
	summarize([]string{"small", "small-20fe"}, []string{targetBare, targetMemory}, all)
	f := frontendsCostOf(all)
	// Differences: +4, -2, +1; ratios to bare: 1.25, 1.2, (1.22 alone:
	// round 3 has no bare for small-20fe) and 1.3, 1.18.
	if f == nil || f.Frontends != manyFrontends || f.Rounds != 3 || f.Extra != 1 || f.ExtraRange != [2]float64{-2, 4} || f.Small != 110 || f.Many != 111 {
		t.Fatalf("frontends cost = %+v", f)
	}
	if d := f.RatioSmall - 1.225; d < -1e-9 || d > 1e-9 {
		t.Errorf("small × bare %v, want 1.225 (the rounds with both ratios)", f.RatioSmall)
	}
	if d := f.RatioMany - 1.24; d < -1e-9 || d > 1e-9 {
		t.Errorf("small-20fe × bare %v, want 1.24", f.RatioMany)
	}
	if md := markdown(report{Meta: machine{Scenarios: []string{"small-20fe"}, Rounds: 3}, Results: all[2:4], Frontends: f}); !strings.Contains(md, "With 20 frontends, cloakroom-memory costs +1.0 CPU µs/req against `small`") {
		t.Errorf("the report does not compare small-20fe with small:\n%s", md)
	}
}

// TestCloakroomConfig: the generated configs load as `cloakroom serve`
// loads them; the one with frontends has them all on one host, the
// measured one at / last, with the cookie name of the others.
func TestCloakroomConfig(t *testing.T) {
	e := &env{opts: &options{}, issuer: "http://127.0.0.1:9", upURL: "http://127.0.0.1:8"}
	for _, n := range []int{0, manyFrontends} {
		cfg, err := config.Parse("bench.yaml", []byte(e.cloakroomConfig(targetMemory, 4000, "memory", n)), nil)
		if err != nil {
			t.Fatalf("%d frontends: %v", n, err)
		}
		apps := cfg.Apps()
		if n == 0 {
			if len(apps) != 1 || cfg.PublicURL != "http://localhost:4000" || apps[0].Session.CookieName != sessionCookie {
				t.Errorf("without frontends: %d frontends, public_url %q, cookie %q", len(apps), cfg.PublicURL, apps[0].Session.CookieName)
			}
			continue
		}
		if len(apps) != n {
			t.Fatalf("%d frontends, want %d", len(apps), n)
		}
		for i, a := range apps {
			want := fmt.Sprintf("/f%02d/", i+1)
			if i == n-1 {
				want = "/"
			}
			if a.PublicURL != "http://localhost:4000" || a.Path != want {
				t.Errorf("frontend %d: %s%s, want http://localhost:4000%s", i, a.PublicURL, a.Path, want)
			}
			if !slices.ContainsFunc(a.APIs, func(api config.API) bool { return api.Path == strings.TrimSuffix(want, "/")+"/api/" }) {
				t.Errorf("frontend %d has no /api/ route under its path: %v", i, a.APIs)
			}
		}
		if last := apps[n-1]; last.Session.CookieName != sessionCookie || last.OIDC.CallbackPath != "/bff/callback" {
			t.Errorf("the measured frontend: cookie %q, callback %q; want %q and /bff/callback", last.Session.CookieName, last.OIDC.CallbackPath, sessionCookie)
		}
	}
}

func TestBodies(t *testing.T) {
	for name, b := range map[string]string{"large": largePayload, "post": string(postBody)} {
		if !json.Valid([]byte(b)) {
			t.Errorf("%s body is not JSON", name)
		}
	}
	if n := len(largePayload); n < 100<<10 || n > 110<<10 {
		t.Errorf("large body is %d bytes, want about 100 KB", n)
	}
	if n := len(postBody); n < 10<<10 || n > 11<<10 {
		t.Errorf("post body is %d bytes, want about 10 KB", n)
	}
	if len(sseEventList) != sseEvents || strings.Count(sseStream, "\n\n") != sseEvents {
		t.Errorf("%d events, want %d", len(sseEventList), sseEvents)
	}
	for _, ev := range sseEventList {
		if len(ev) != sseEventBytes {
			t.Errorf("event %q is %d bytes, want %d", ev, len(ev), sseEventBytes)
		}
	}
}

func TestUpstream(t *testing.T) {
	srv := httptest.NewServer(&upstream{})
	defer srv.Close()
	e := &env{upURL: srv.URL}
	client := srv.Client()
	ctx := t.Context()
	if err := e.armUpstream(ctx, client, 2); err != nil {
		t.Fatal(err)
	}
	in := &instance{name: targetDirect, base: srv.URL, cookie: sessionCookie + "=x"}
	for _, name := range []string{"post", "sse", "large", "small"} {
		s := scenarioByName(name)
		req, err := in.newRequest(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		resp, body, err := do(client, req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", name, resp, err)
		}
		if err := checkAnswer(s, resp.Header.Get("Content-Type"), []byte(body)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	st, err := e.upstreamStats(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests != 4 || len(st.Probes) != 2 {
		t.Fatalf("the upstream counted %d requests and recorded %d, want 4 and the 2 it was armed for", st.Requests, len(st.Probes))
	}
	p := st.Probes[0]
	if p.Method != http.MethodPost || p.Path != pathPost || p.BodyBytes != int64(len(postBody)) || p.ContentType != "application/json" || !p.CSRF || !p.Cookie {
		t.Errorf("recorded %+v", p)
	}
	if err := e.checkProbe(in, scenarioByName("post"), p); err != nil {
		t.Error(err)
	}
	if d, err := checkStreaming(ctx, client, in, scenarioByName("sse")); err != nil || d > streamHold/2 {
		t.Errorf("checkStreaming = %v, %v; want the first event at once", d, err)
	}
}

func TestCheckAnswerComposite(t *testing.T) {
	s := scenarioByName("composite-4")
	good := `{"p1":` + payload + `,"p2":` + payload + `,"p3":` + payload + `,"p4":` + payload + `}`
	if err := checkAnswer(s, "application/json", []byte(good)); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{
		`{"p1":` + payload + `}`,
		`{"p1":` + payload + `,"p2":` + payload + `,"p3":` + payload + `,"p4":null}`,
		`{"p1":1,"p2":2,"p3":3,"p4":4,"_meta":{}}`,
		`not json`,
	} {
		if checkAnswer(s, "application/json", []byte(bad)) == nil {
			t.Errorf("checkAnswer accepted %.60s", bad)
		}
	}
	if !strings.Contains(compositesYAML(), "- path: /bff/composite-4") || strings.Count(compositesYAML(), "api: /api/") != 5 {
		t.Errorf("compositesYAML:\n%s", compositesYAML())
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 100_000; i++ {
		h.record(time.Duration(i) * time.Microsecond) // 1µs .. 100ms, uniform
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 50 * time.Millisecond}, {.99, 99 * time.Millisecond}, {.001, 100 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.01 || d > 0.01 {
			t.Errorf("quantile(%v) = %v, want %v ±1%%", c.q, got, c.want)
		}
	}
	if h.quantile(1) != 100*time.Millisecond {
		t.Errorf("quantile(1) = %v, want the maximum", h.quantile(1))
	}
	for _, ns := range []uint64{0, 1, 127, 128, 129, 255, 256, 1e3, 1e6, 1e9, 1 << 62} {
		i := bucketOf(ns)
		if mid := bucketMid(i); float64(mid) < float64(ns)*0.99 || float64(mid) > float64(ns)*1.01+1 {
			t.Errorf("bucketMid(bucketOf(%d)) = %d, more than 1%% off", ns, mid)
		}
	}
}

func TestProcCPUTicks(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	deadline := time.Now().Add(5 * time.Second)
	start, err := procCPUTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the counter moves (a tick is usually 10ms).
	x := 0
	for i := 0; i < 1e10 && time.Now().Before(deadline); i++ {
		x += i
		if i%1e6 == 0 {
			if now, _ := procCPUTicks(os.Getpid()); now > start {
				return
			}
		}
	}
	t.Fatalf("CPU ticks did not move after 5s of work (%d)", x)
}
