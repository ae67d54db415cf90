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

// targetResult is one row of the report; JSON keeps every raw number.
type targetResult struct {
	Target  string `json:"target"`
	Round   int    `json:"round"`
	Skipped string `json:"skipped,omitempty"`
	Store   string `json:"session_store,omitempty"`

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
	RatioToBare     float64            `json:"cpu_ratio_to_bare,omitempty"`
	// RestShare is the share of the machine's busy time spent outside
	// the processes of the run.
	RestShare float64 `json:"rest_of_machine_share"`
	// IdleWaitSec is how long the run waited for a quiet machine before
	// this target; BusyBefore that it never got quiet.
	IdleWaitSec float64 `json:"idle_wait_seconds"`
	BusyBefore  bool    `json:"machine_busy_before,omitempty"`
	// Rounds and CPURange summarize every round of this target (in a
	// summary row only).
	Rounds   int        `json:"rounds,omitempty"`
	CPURange [2]float64 `json:"cpu_us_per_request_min_max"`
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

func (r *targetResult) compute(clkTck int64) {
	if r.Skipped != "" || r.Requests == 0 {
		return
	}
	r.ReqPerSec = float64(r.Requests) / r.ElapsedSec
	perReq := func(ticks int64) float64 { return float64(ticks) * 1e6 / float64(clkTck) / float64(r.Requests) }
	r.CPUMicrosPerReq = perReq(r.CPUTicks["target"])
	r.OtherMicros = map[string]float64{}
	rest := r.CPUTicks[machineBusy]
	for name, t := range r.CPUTicks {
		switch name {
		case machineBusy:
		case machineSteal:
			r.OtherMicros["steal"] = perReq(t)
		default:
			rest -= t
			if name != "target" {
				r.OtherMicros[name] = perReq(t)
			}
		}
	}
	// Everything else that ran: the kernel's own threads (some loopback
	// network work), and any other program, which would skew the run.
	r.OtherMicros["rest"] = perReq(max(rest, 0))
	r.RestShare = float64(max(rest, 0)) / float64(max(r.CPUTicks[machineBusy], 1))
}

func setRatios(rs []*targetResult) {
	var bare float64
	for _, r := range rs {
		if r.Target == targetBare {
			bare = r.CPUMicrosPerReq
		}
	}
	if bare == 0 {
		return
	}
	for _, r := range rs {
		if r.Skipped == "" && r.Requests > 0 {
			r.RatioToBare = r.CPUMicrosPerReq / bare
		}
	}
}

// machine describes where and how the run happened.
type machine struct {
	Date        string  `json:"date"`
	Revision    string  `json:"revision,omitempty"`
	CPUs        int     `json:"cpus"`
	CPUModel    string  `json:"cpu_model"`
	GoVersion   string  `json:"go_version"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	ClkTck      int64   `json:"clk_tck"`
	ClkTckFrom  string  `json:"clk_tck_from"`
	Workers     int     `json:"workers"`
	WarmupSec   float64 `json:"warmup_seconds"`
	DurationSec float64 `json:"duration_seconds"`
	Quick       bool    `json:"quick"`
	Rounds      int     `json:"rounds"`
	LogLevel    string  `json:"cloakroom_log_level,omitempty"`
}

type report struct {
	Meta    machine         `json:"machine"`
	Results []*targetResult `json:"results"` // one per target: its median round
	Runs    []*targetResult `json:"runs"`    // every round of every target
}

// summarize picks, per target, the round with the median CPU µs/req and
// records the range over all rounds; then sets the ratios to bare.
func summarize(targets []string, all []*targetResult) []*targetResult {
	var out []*targetResult
	for _, t := range targets {
		var rs []*targetResult
		for _, r := range all {
			if r.Target == t && r.Skipped == "" && r.Requests > 0 {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			for _, r := range all {
				if r.Target == t {
					out = append(out, r)
					break
				}
			}
			continue
		}
		slices.SortFunc(rs, func(a, b *targetResult) int { return cmp.Compare(a.CPUMicrosPerReq, b.CPUMicrosPerReq) })
		row := *rs[(len(rs)-1)/2]
		row.Rounds = len(rs)
		row.CPURange = [2]float64{rs[0].CPUMicrosPerReq, rs[len(rs)-1].CPUMicrosPerReq}
		for _, r := range rs {
			// A failure in any round shows in the summary.
			if r.Errors > row.Errors {
				row.Errors, row.FirstError = r.Errors, r.FirstError
			}
			row.RestShare = max(row.RestShare, r.RestShare)
		}
		out = append(out, &row)
	}
	setRatios(out)
	return out
}

func describeMachine(o *options, clkTck int64, fromGetconf bool) machine {
	m := machine{
		Date: time.Now().UTC().Format(time.RFC3339), Revision: o.Revision, CPUs: runtime.NumCPU(), CPUModel: cpuModel(),
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), ClkTck: clkTck, ClkTckFrom: "getconf CLK_TCK",
		Workers: o.Workers, WarmupSec: o.Warmup.Seconds(), DurationSec: o.Duration.Seconds(), Quick: o.Quick, Rounds: o.Rounds, LogLevel: o.LogLevel,
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

func markdown(m machine, rs []*targetResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Cloakroom load benchmark\n\n")
	if m.Revision != "" {
		fmt.Fprintf(&b, "revision %s · ", m.Revision)
	}
	fmt.Fprintf(&b, "%s · %d CPUs (%s) · %s · %d workers, %gs warm-up, %gs recorded per target · CLK_TCK %d (%s)\n\n",
		m.Date, m.CPUs, m.CPUModel, m.GoVersion, m.Workers, m.WarmupSec, m.DurationSec, m.ClkTck, m.ClkTckFrom)
	if m.LogLevel != "" {
		fmt.Fprintf(&b, "Cloakroom ran with log_level: %s.\n\n", m.LogLevel)
	}
	multi := m.Rounds > 1
	if multi {
		fmt.Fprintf(&b, "Each row is the round, of %d, with the median CPU µs/req; \"range\" is the lowest and highest over the rounds.\n\n", m.Rounds)
		b.WriteString("| target | req/s | p50 | p99 | errors | CPU µs/req | range | × bare |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	} else {
		b.WriteString("| target | req/s | p50 | p99 | errors | CPU µs/req | × bare |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	}
	for _, r := range rs {
		if r.Skipped != "" {
			cells := strings.Repeat(" |", 5)
			if multi {
				cells += " |"
			}
			fmt.Fprintf(&b, "| %s | skipped: %s |%s\n", r.Target, r.Skipped, cells)
			continue
		}
		ratio := "–"
		if r.RatioToBare > 0 {
			ratio = fmt.Sprintf("%.2f", r.RatioToBare)
		}
		rng := ""
		if multi {
			rng = fmt.Sprintf(" %.0f–%.0f |", r.CPURange[0], r.CPURange[1])
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %d | %.1f |%s %s |\n",
			r.Target, r.ReqPerSec, fmtDur(r.P50), fmtDur(r.P99), r.Errors, r.CPUMicrosPerReq, rng, ratio)
	}
	b.WriteString("\nCPU µs/req is the measured process's utime+stime over the recorded interval divided by the 200s completed in it: ")
	b.WriteString("the upstream itself for `direct`, the proxy for the others. The other processes on the same cores, µs per request:\n\n")
	b.WriteString("| target | upstream | redis-server | loadgen | rest of machine | steal |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		if r.Skipped != "" || r.Requests == 0 {
			continue
		}
		cell := func(name string) string {
			if v, ok := r.OtherMicros[name]; ok {
				return fmt.Sprintf("%.1f", v)
			}
			return "–"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Target, cell("upstream"), cell("redis-server"), cell("loadgen"), cell("rest"), cell("steal"))
	}
	fmt.Fprintf(&b, "\nThe load generator runs on the same %d CPUs as the process it measures, so req/s and latency are lower than ", m.CPUs)
	b.WriteString("on a dedicated machine; CPU µs/req counts only the measured process and is the number to compare. ")
	b.WriteString("Targets run one after another, never at the same time. `direct` has no proxy, so its CPU is the upstream's. ")
	b.WriteString("\"rest of machine\" is busy CPU outside these processes (kernel threads; other programs would show here and skew the run).\n")
	for _, r := range rs {
		if r.RestShare > 0.15 {
			fmt.Fprintf(&b, "\n**Warning:** during %s, %.0f%% of the machine's busy time was outside the run's processes: something else was running.\n", r.Target, 100*r.RestShare)
		}
	}
	return b.String()
}

// fmtDur prints a latency in µs below 1ms, else in ms.
func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
