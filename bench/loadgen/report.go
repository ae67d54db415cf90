package main

import (
	"cmp"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// targetResult is one measurement of one scenario on one target, or (in
// report.Results) the summary of its rounds; JSON keeps every raw number.
// In the login scenario a request is a whole login.
type targetResult struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Round    int    `json:"round"`
	Skipped  string `json:"skipped,omitempty"`
	Store    string `json:"session_store,omitempty"`
	Workers  int    `json:"workers"`

	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	ElapsedSec float64 `json:"elapsed_seconds"`
	Truncated  bool    `json:"stopped_by_max_requests,omitempty"`
	ReqPerSec  float64 `json:"requests_per_second"`

	Mean time.Duration `json:"latency_mean_ns"`
	P50  time.Duration `json:"latency_p50_ns"`
	P90  time.Duration `json:"latency_p90_ns"`
	P99  time.Duration `json:"latency_p99_ns"`
	Max  time.Duration `json:"latency_max_ns"`

	// CPUTicks are utime+stime deltas over the recorded interval: "target"
	// is the measured process, the others share the machine with it.
	CPUTicks        map[string]int64   `json:"cpu_ticks"`
	CPUMicrosPerReq float64            `json:"cpu_us_per_request"`
	OtherMicros     map[string]float64 `json:"other_cpu_us_per_request"`
	// Events is the number of server-sent events per answer, and
	// CPUMicrosPerEvent the target's CPU per event.
	Events            int     `json:"events_per_response,omitempty"`
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event,omitempty"`
	// FirstEvent is when the first event of a stream paused after it
	// arrived, in the verification.
	FirstEvent time.Duration `json:"stream_first_event_ns,omitempty"`
	// RatioToBare is CPUMicrosPerReq over bare's in the same scenario and
	// round; in a summary row, the median of the rounds' ratios.
	RatioToBare float64 `json:"cpu_ratio_to_bare,omitempty"`
	// RestShare is the share of the machine's busy time spent outside
	// the processes of the run.
	RestShare float64 `json:"rest_of_machine_share"`
	// IdleWaitSec is how long the run waited for a quiet machine before
	// this measurement; BusyBefore that it never got quiet.
	IdleWaitSec float64 `json:"idle_wait_seconds"`
	BusyBefore  bool    `json:"machine_busy_before,omitempty"`
	// Rounds, CPURange and RatioRange summarize every round (in a summary
	// row only): lowest and highest.
	Rounds     int        `json:"rounds,omitempty"`
	CPURange   [2]float64 `json:"cpu_us_per_request_min_max"`
	RatioRange [2]float64 `json:"cpu_ratio_to_bare_min_max"`
}

func (r *targetResult) fill(lr *loadResult) {
	r.Requests, r.Errors, r.FirstError, r.Truncated = lr.Requests, lr.Errors, lr.FirstError, lr.Truncated
	r.ElapsedSec = lr.Elapsed.Seconds()
	h := lr.Hist
	if h.n > 0 {
		r.Mean = h.sum / time.Duration(h.n)
	}
	r.P50, r.P90, r.P99, r.Max = h.quantile(.50), h.quantile(.90), h.quantile(.99), h.max
	r.CPUTicks = lr.CPUTicks
}

// otherIdle is the OtherMicros key of the round's targets not being
// measured.
const otherIdle = "idle targets"

func (r *targetResult) compute(clkTck int64) {
	if r.Skipped != "" || r.Requests == 0 {
		return
	}
	r.ReqPerSec = float64(r.Requests) / r.ElapsedSec
	perReq := func(ticks int64) float64 { return float64(ticks) * 1e6 / float64(clkTck) / float64(r.Requests) }
	r.CPUMicrosPerReq = perReq(r.CPUTicks["target"])
	if r.Events > 0 {
		r.CPUMicrosPerEvent = r.CPUMicrosPerReq / float64(r.Events)
	}
	r.OtherMicros = map[string]float64{}
	rest := r.CPUTicks[machineBusy]
	var idle int64
	for name, t := range r.CPUTicks {
		switch {
		case name == machineBusy:
		case name == machineIRQ:
			rest -= t
			r.OtherMicros["interrupts"] = perReq(t)
		case name == machineSteal:
			r.OtherMicros["steal"] = perReq(t)
		case strings.HasPrefix(name, idlePrefix):
			rest -= t
			idle += t
		default:
			rest -= t
			if name != "target" {
				r.OtherMicros[name] = perReq(t)
			}
		}
	}
	r.OtherMicros[otherIdle] = perReq(idle)
	// Everything else that ran: the kernel's own threads, and any other
	// program, which would skew the run.
	r.OtherMicros["rest"] = perReq(max(rest, 0))
	r.RestShare = float64(max(rest, 0)) / float64(max(r.CPUTicks[machineBusy], 1))
}

func (r *targetResult) valid() bool { return r.Skipped == "" && r.Requests > 0 }

// setRatios gives every run its ratio to bare's run of the same scenario
// and round: the two ran a few seconds apart, so the ratio is robust to
// the machine getting faster or slower between rounds.
func setRatios(all []*targetResult) {
	type key struct {
		scenario string
		round    int
	}
	bare := map[key]float64{}
	for _, r := range all {
		if r.Target == targetBare && r.valid() {
			bare[key{r.Scenario, r.Round}] = r.CPUMicrosPerReq
		}
	}
	for _, r := range all {
		if b := bare[key{r.Scenario, r.Round}]; b > 0 && r.valid() {
			r.RatioToBare = r.CPUMicrosPerReq / b
		}
	}
}

// median is the middle of xs, or the mean of the two middle ones; 0 when
// xs is empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// minMax is the lowest and highest of xs.
func minMax(xs []float64) [2]float64 {
	if len(xs) == 0 {
		return [2]float64{}
	}
	return [2]float64{slices.Min(xs), slices.Max(xs)}
}

// medianRun is the run with the median CPU µs/req; of an even number, the
// lower of the two middle ones, so that the row is a real round.
func medianRun(rs []*targetResult) *targetResult {
	s := slices.Clone(rs)
	slices.SortStableFunc(s, func(a, b *targetResult) int { return cmp.Compare(a.CPUMicrosPerReq, b.CPUMicrosPerReq) })
	return s[(len(s)-1)/2]
}

// summarize gives every run its ratio to bare, then returns, per scenario
// and target (in the order given), the round with the median CPU µs/req,
// with the ranges over all rounds and the median of the rounds' ratios.
func summarize(scenarios, targets []string, all []*targetResult) []*targetResult {
	setRatios(all)
	var out []*targetResult
	for _, sc := range scenarios {
		for _, t := range targets {
			var rs, seen []*targetResult
			for _, r := range all {
				if r.Scenario != sc || r.Target != t {
					continue
				}
				seen = append(seen, r)
				if r.valid() {
					rs = append(rs, r)
				}
			}
			if len(rs) == 0 {
				if len(seen) > 0 {
					out = append(out, seen[0]) // skipped, or nothing completed
				}
				continue
			}
			row := *medianRun(rs)
			row.Rounds = len(rs)
			var cpus, ratios []float64
			for _, r := range rs {
				cpus = append(cpus, r.CPUMicrosPerReq)
				if r.RatioToBare > 0 {
					ratios = append(ratios, r.RatioToBare)
				}
				// A failure or interference in any round shows in the summary.
				if r.Errors > row.Errors {
					row.Errors, row.FirstError = r.Errors, r.FirstError
				}
				row.RestShare = max(row.RestShare, r.RestShare)
				row.BusyBefore = row.BusyBefore || r.BusyBefore
			}
			row.CPURange = minMax(cpus)
			row.RatioToBare, row.RatioRange = median(ratios), minMax(ratios)
			out = append(out, &row)
		}
	}
	return out
}

// aggregation is what one more composite part costs Cloakroom.
type aggregation struct {
	Target string `json:"target"`
	Rounds int    `json:"rounds"`
	// Composite1 and Composite4 are the median CPU µs/req of the
	// composite-1 and composite-4 scenarios.
	Composite1 float64 `json:"composite_1_cpu_us_per_request"`
	Composite4 float64 `json:"composite_4_cpu_us_per_request"`
	// PerExtraPart is the median over rounds of (composite-4 −
	// composite-1) / 3, with its range.
	PerExtraPart      float64    `json:"cpu_us_per_extra_part"`
	PerExtraPartRange [2]float64 `json:"cpu_us_per_extra_part_min_max"`
	// OverSmall is the median over rounds of composite-1 − small on the
	// same target: a one-part composite against proxying the same call.
	OverSmall float64 `json:"composite_1_minus_small_cpu_us,omitempty"`
}

// aggregationOf derives the cost of a part from the composite runs, round
// by round; nil without a round that has both composites.
func aggregationOf(all []*targetResult) *aggregation {
	cpu := func(scenario string, round int) float64 {
		for _, r := range all {
			if r.Scenario == scenario && r.Target == targetMemory && r.Round == round && r.valid() {
				return r.CPUMicrosPerReq
			}
		}
		return 0
	}
	var c1s, c4s, parts, over []float64
	for round := 1; ; round++ {
		if !slices.ContainsFunc(all, func(r *targetResult) bool { return r.Round == round }) {
			break
		}
		c1, c4 := cpu("composite-1", round), cpu("composite-4", round)
		if c1 == 0 || c4 == 0 {
			continue
		}
		c1s, c4s = append(c1s, c1), append(c4s, c4)
		parts = append(parts, (c4-c1)/3)
		if small := cpu("small", round); small > 0 {
			over = append(over, c1-small)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return &aggregation{
		Target: targetMemory, Rounds: len(parts),
		Composite1: median(c1s), Composite4: median(c4s),
		PerExtraPart: median(parts), PerExtraPartRange: minMax(parts),
		OverSmall: median(over),
	}
}

// frontendsCost is what serving many frontends costs Cloakroom per
// request: small-20fe against small on cloakroom-memory, round by round.
type frontendsCost struct {
	Target    string `json:"target"`
	Frontends int    `json:"frontends"`
	Rounds    int    `json:"rounds"`
	// Small and Many are the median CPU µs/req of small and small-20fe,
	// RatioSmall and RatioMany the medians of their rounds' ratios to bare.
	Small      float64 `json:"small_cpu_us_per_request"`
	Many       float64 `json:"many_cpu_us_per_request"`
	RatioSmall float64 `json:"small_cpu_ratio_to_bare"`
	RatioMany  float64 `json:"many_cpu_ratio_to_bare"`
	// Extra is the median over rounds of small-20fe − small, with its
	// range.
	Extra      float64    `json:"extra_cpu_us_per_request"`
	ExtraRange [2]float64 `json:"extra_cpu_us_per_request_min_max"`
}

// frontendsCostOf compares the scenario with frontends with small, round
// by round; nil without a round that has both on cloakroom-memory.
func frontendsCostOf(all []*targetResult) *frontendsCost {
	run := func(scenario string, round int) *targetResult {
		for _, r := range all {
			if r.Scenario == scenario && r.Target == targetMemory && r.Round == round && r.valid() {
				return r
			}
		}
		return nil
	}
	var name string
	var n int
	for _, s := range allScenarios {
		if s.Frontends > 0 {
			name, n = s.Name, s.Frontends
		}
	}
	var smalls, manys, extras, ratioSmall, ratioMany []float64
	for round := 1; ; round++ {
		if !slices.ContainsFunc(all, func(r *targetResult) bool { return r.Round == round }) {
			break
		}
		small, many := run("small", round), run(name, round)
		if small == nil || many == nil {
			continue
		}
		smalls, manys = append(smalls, small.CPUMicrosPerReq), append(manys, many.CPUMicrosPerReq)
		extras = append(extras, many.CPUMicrosPerReq-small.CPUMicrosPerReq)
		if small.RatioToBare > 0 && many.RatioToBare > 0 {
			ratioSmall, ratioMany = append(ratioSmall, small.RatioToBare), append(ratioMany, many.RatioToBare)
		}
	}
	if len(extras) == 0 {
		return nil
	}
	return &frontendsCost{
		Target: targetMemory, Frontends: n, Rounds: len(extras),
		Small: median(smalls), Many: median(manys),
		RatioSmall: median(ratioSmall), RatioMany: median(ratioMany),
		Extra: median(extras), ExtraRange: minMax(extras),
	}
}

// machine describes where and how the run happened.
type machine struct {
	Date         string   `json:"date"`
	Revision     string   `json:"revision,omitempty"`
	CPUs         int      `json:"cpus"`
	CPUModel     string   `json:"cpu_model"`
	GoVersion    string   `json:"go_version"`
	GOMAXPROCS   int      `json:"gomaxprocs"`
	ClkTck       int64    `json:"clk_tck"`
	ClkTckFrom   string   `json:"clk_tck_from"`
	Workers      int      `json:"workers"`
	LoginClients int      `json:"login_clients"`
	WarmupSec    float64  `json:"warmup_seconds"`
	DurationSec  float64  `json:"duration_seconds"`
	Quick        bool     `json:"quick"`
	Rounds       int      `json:"rounds"`
	Scenarios    []string `json:"scenarios"`
	Targets      []string `json:"targets"`
	LogLevel     string   `json:"cloakroom_log_level,omitempty"`
	BareGCFloor  bool     `json:"bare_gc_floor"`
	// BareBearerBytes is the length of the token bare adds, and
	// BareBearerFrom where it came from.
	BareBearerBytes int      `json:"bare_bearer_bytes,omitempty"`
	BareBearerFrom  string   `json:"bare_bearer_from,omitempty"`
	Warnings        []string `json:"warnings,omitempty"`
	WallSeconds     float64  `json:"wall_seconds"`
}

type report struct {
	Meta        machine         `json:"machine"`
	Results     []*targetResult `json:"results"` // per scenario and target: its median round
	Runs        []*targetResult `json:"runs"`    // every round of every scenario and target
	Aggregation *aggregation    `json:"aggregation,omitempty"`
	Frontends   *frontendsCost  `json:"frontends,omitempty"`
}

func describeMachine(o *options, clkTck int64, fromGetconf bool) machine {
	m := machine{
		Date: time.Now().UTC().Format(time.RFC3339), Revision: o.Revision, CPUs: runtime.NumCPU(), CPUModel: cpuModel(),
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), ClkTck: clkTck, ClkTckFrom: "getconf CLK_TCK",
		Workers: o.Workers, LoginClients: o.LoginClients, WarmupSec: o.Warmup.Seconds(), DurationSec: o.Duration.Seconds(),
		Quick: o.Quick, Rounds: o.Rounds, Scenarios: o.Scenarios, Targets: o.Targets, LogLevel: o.LogLevel, BareGCFloor: o.BareGCFloor,
	}
	if !fromGetconf {
		m.ClkTckFrom = "assumed (getconf unavailable)"
	}
	return m
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// table is a Markdown table; every column but the first is right-aligned.
type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	fmt.Fprintf(b, "| %s |\n|---|", strings.Join(t.head, " | "))
	b.WriteString(strings.Repeat("---:|", len(t.head)-1) + "\n")
	for _, r := range t.rows {
		fmt.Fprintf(b, "| %s |\n", strings.Join(r, " | "))
	}
	b.WriteString("\n")
}

func markdown(rep report) string {
	m := rep.Meta
	var b strings.Builder
	fmt.Fprintf(&b, "## Cloakroom load benchmark\n\n")
	if m.Revision != "" {
		fmt.Fprintf(&b, "revision %s · ", m.Revision)
	}
	fmt.Fprintf(&b, "%s · %d CPUs (%s) · %s · %d round(s), %gs warm-up, %gs recorded per scenario and target · CLK_TCK %d (%s) · %.0fs in all\n\n",
		m.Date, m.CPUs, m.CPUModel, m.GoVersion, m.Rounds, m.WarmupSec, m.DurationSec, m.ClkTck, m.ClkTckFrom, m.WallSeconds)
	if m.LogLevel != "" {
		fmt.Fprintf(&b, "Cloakroom ran with log_level: %s.\n\n", m.LogLevel)
	}
	if m.BareGCFloor {
		fmt.Fprintf(&b, "`bare` runs the collector with the heap floor `cloakroom serve` uses (internal/gctune, 64 MiB); `--bare-gc-floor=false` gives it Go's default GOGC=100 instead.\n\n")
	} else {
		fmt.Fprintf(&b, "`bare` runs with Go's default GOGC=100; Cloakroom with its heap floor (internal/gctune, 64 MiB).\n\n")
	}
	multi := m.Rounds > 1
	if multi {
		fmt.Fprintf(&b, "Each row is the round, of %d, with the median CPU µs/req. \"CPU range\" is the lowest and highest CPU µs/req over the rounds; "+
			"\"× bare\" is the median of the rounds' ratios to bare's CPU µs/req in the same scenario and round, and \"× bare range\" their lowest and highest.\n\n", m.Rounds)
	}
	if m.BareBearerBytes > 0 {
		fmt.Fprintf(&b, "`bare` adds a %d-byte bearer: %s.\n\n", m.BareBearerBytes, m.BareBearerFrom)
	}

	rowsOf := func(sc string) []*targetResult {
		var rs []*targetResult
		for _, r := range rep.Results {
			if r.Scenario == sc {
				rs = append(rs, r)
			}
		}
		return rs
	}
	var composites []*targetResult
	for _, name := range m.Scenarios {
		s, rs := scenarioByName(name), rowsOf(name)
		if len(rs) == 0 {
			continue
		}
		if s.Parts > 0 {
			composites = append(composites, rs...)
			continue
		}
		if s.Login {
			fmt.Fprintf(&b, "### login\n\n%s. CPU µs/login is Cloakroom's alone: the provider runs in the load generator.\n\n", s.what(rs[0].Workers))
		} else {
			fmt.Fprintf(&b, "### %s\n\n%s.\n\n", name, s.what(rs[0].Workers))
		}
		scenarioTable(&b, s, rs, multi)
		if f := rep.Frontends; s.Frontends > 0 && f != nil {
			fmt.Fprintf(&b, "With %d frontends, %s costs %+.1f CPU µs/req against `small` (%.1f against %.1f; the median over %d round(s) of the difference",
				f.Frontends, f.Target, f.Extra, f.Many, f.Small, f.Rounds)
			if f.Rounds > 1 {
				fmt.Fprintf(&b, ", %s over the rounds", fmtRange(f.ExtraRange, "%+.1f"))
			}
			b.WriteString(")")
			if f.RatioMany > 0 {
				fmt.Fprintf(&b, "; × bare %.2f against %.2f", f.RatioMany, f.RatioSmall)
			}
			b.WriteString(".\n\n")
		}
		otherTable(&b, rs)
	}
	if len(composites) > 0 {
		b.WriteString("### Aggregation (cloakroom-memory)\n\n")
		for _, name := range m.Scenarios {
			if s := scenarioByName(name); s.Parts > 0 {
				fmt.Fprintf(&b, "- %s: %s.\n", name, s.what(composites[0].Workers))
			}
		}
		b.WriteString("\n")
		t := &table{head: []string{"composite", "parts", "req/s", "p50", "p99", "errors", "CPU µs/req"}}
		if multi {
			t.head = append(t.head, "CPU range")
		}
		for _, r := range composites {
			if !r.valid() {
				continue
			}
			cells := []string{r.Scenario, fmt.Sprint(scenarioByName(r.Scenario).Parts), fmt.Sprintf("%.0f", r.ReqPerSec), fmtDur(r.P50), fmtDur(r.P99), fmt.Sprint(r.Errors), fmt.Sprintf("%.1f", r.CPUMicrosPerReq)}
			if multi {
				cells = append(cells, fmtRange(r.CPURange, "%.1f"))
			}
			t.add(cells...)
		}
		t.write(&b)
		if a := rep.Aggregation; a != nil {
			fmt.Fprintf(&b, "Each extra part costs **%.1f CPU µs** per call: (composite-4 − composite-1) / 3, the median over %d round(s)", a.PerExtraPart, a.Rounds)
			if a.Rounds > 1 {
				fmt.Fprintf(&b, ", %s over the rounds", fmtRange(a.PerExtraPartRange, "%.1f"))
			}
			b.WriteString(".")
			if a.OverSmall != 0 {
				fmt.Fprintf(&b, " A one-part composite against proxying the same call: composite-1 − small = %+.1f µs (median over rounds).", a.OverSmall)
			}
			b.WriteString("\n\n")
		}
		otherTable(&b, composites)
	}

	fmt.Fprintf(&b, "CPU µs/req is the measured process's utime+stime over the recorded interval divided by the operations completed in it "+
		"(for `direct` the upstream itself, for the others the proxy). The load generator runs on the same %d CPUs, so req/s and latency are lower than "+
		"on a dedicated machine; CPU µs/req counts only the measured process and is the number to compare. "+
		"All of a round's targets run at once, but only one is loaded at a time; the others' CPU is \"idle targets\". "+
		"\"interrupts\" is the machine's irq and softirq time, which the kernel accounts to no process: mostly the loopback traffic of the run itself. "+
		"\"rest of machine\" is the other busy CPU outside these processes (kernel threads; other programs would show here and skew the run).\n", m.CPUs)
	for _, r := range rep.Results {
		if r.RestShare > 0.15 {
			fmt.Fprintf(&b, "\n**Warning:** during %s on %s, %.0f%% of the machine's busy time was outside the run's processes: something else was running.\n", r.Scenario, r.Target, 100*r.RestShare)
		}
	}
	var busy []string
	for _, r := range rep.Runs {
		if r.BusyBefore {
			busy = append(busy, fmt.Sprintf("%s on %s (round %d, after %.1fs of waiting)", r.Scenario, r.Target, r.Round, r.IdleWaitSec))
		}
	}
	if len(busy) > 0 {
		fmt.Fprintf(&b, "\n**Warning:** the machine was more than 20%% busy before %d measurement(s), measured anyway: %s.\n", len(busy), strings.Join(busy, ", "))
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(&b, "\n**Warning:** %s.\n", w)
	}
	return b.String()
}

// scenarioTable is the main table of one scenario.
func scenarioTable(b *strings.Builder, s scenario, rs []*targetResult, multi bool) {
	t := &table{head: []string{"target", "req/s", "p50", "p99", "errors", "CPU µs/req"}}
	if s.Login {
		t.head[1], t.head[5] = "logins/s", "CPU µs/login"
	}
	if s.Events > 0 {
		t.head = append(t.head, "CPU µs/event", "first event")
	}
	if multi {
		t.head = append(t.head, "CPU range")
	}
	if !s.Login {
		t.head = append(t.head, "× bare")
		if multi {
			t.head = append(t.head, "× bare range")
		}
	}
	for _, r := range rs {
		if r.Skipped != "" {
			cells := make([]string, len(t.head))
			cells[0], cells[1] = r.Target, "skipped: "+r.Skipped
			t.add(cells...)
			continue
		}
		cells := []string{r.Target, fmt.Sprintf("%.0f", r.ReqPerSec), fmtDur(r.P50), fmtDur(r.P99), fmt.Sprint(r.Errors), fmt.Sprintf("%.1f", r.CPUMicrosPerReq)}
		if s.Events > 0 {
			cells = append(cells, fmt.Sprintf("%.2f", r.CPUMicrosPerEvent), fmtDur(r.FirstEvent))
		}
		if multi {
			cells = append(cells, fmtRange(r.CPURange, "%.1f"))
		}
		if !s.Login {
			ratio, rng := "–", "–"
			if r.RatioToBare > 0 {
				ratio, rng = fmt.Sprintf("%.2f", r.RatioToBare), fmtRange(r.RatioRange, "%.2f")
			}
			cells = append(cells, ratio)
			if multi {
				cells = append(cells, rng)
			}
		}
		t.add(cells...)
	}
	t.write(b)
}

// otherTable is the CPU of the other processes during the same intervals.
func otherTable(b *strings.Builder, rs []*targetResult) {
	t := &table{head: []string{"scenario", "target", "upstream", "redis-server", "loadgen", otherIdle, "interrupts", "rest of machine", "steal"}}
	for _, r := range rs {
		if !r.valid() {
			continue
		}
		cell := func(name string) string {
			if v, ok := r.OtherMicros[name]; ok {
				return fmt.Sprintf("%.1f", v)
			}
			return "–"
		}
		t.add(r.Scenario, r.Target, cell("upstream"), cell("redis-server"), cell("loadgen"), cell(otherIdle), cell("interrupts"), cell("rest"), cell("steal"))
	}
	if len(t.rows) == 0 {
		return
	}
	b.WriteString("CPU of the other processes during the same intervals, µs per operation:\n\n")
	t.write(b)
}

func fmtRange(r [2]float64, f string) string {
	return fmt.Sprintf(f+"–"+f, r[0], r[1])
}

// fmtDur prints a latency in µs below 1ms, else in ms.
func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
