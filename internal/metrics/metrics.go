// Package metrics owns Cloakroom's Prometheus registry (one per server, no
// globals) and the request middleware. Every label has a bounded set of
// values: routes are the configured route names, never raw paths, and
// frontends the configured frontend names.
//
// The request, upstream, login, logout, refresh and rejection counters
// carry a frontend label. A configuration without frontends: has one
// implicit frontend whose name is "": Prometheus treats a label with an
// empty value as absent, so its series are the ones it had before the
// label existed.
package metrics

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the gateway's instruments.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	upstream    *prometheus.HistogramVec
	logins      *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	refreshWait prometheus.Histogram
	logouts     *prometheus.CounterVec
	rejections  *prometheus.CounterVec
	clientAuth  *prometheus.CounterVec
	limitErrors prometheus.Counter

	// Children of the per-request instruments, by label values: the hot
	// path finds its counter with one map read instead of hashing and
	// validating label values on every request. Label sets are bounded,
	// so the maps stay small; they are copied on write and read without a
	// lock.
	reqChildren      children[reqLabels, prometheus.Counter]
	durationChildren children[routeLabels, prometheus.Observer]
	upstreamChildren children[routeLabels, prometheus.Observer]
}

type reqLabels struct {
	frontend, route, class string
	code                   int
}

type routeLabels struct{ frontend, route string }

// children is a copy-on-write cache of a vector's children.
type children[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

// get returns the child for k, making it with mk the first time.
func (c *children[K, V]) get(k K, mk func() V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := make(map[K]V, 1)
	if old != nil {
		next = maps.Clone(*old)
	}
	v := mk()
	next[k] = v
	c.m.Store(&next)
	return v
}

// New registers every instrument on a fresh registry, with Go and process
// collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_requests_total", Help: "Requests by frontend, route, method class and status code.",
	}, []string{"frontend", "route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cloakroom_request_duration_seconds", Help: "Whole-request latency by frontend and route.", Buckets: buckets,
	}, []string{"frontend", "route"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cloakroom_upstream_duration_seconds", Help: "Time from sending to an upstream until its response headers, by frontend and route.", Buckets: buckets,
	}, []string{"frontend", "route"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_logins_total", Help: "Logins by frontend, stage (started, completed, failed) and failure reason.",
	}, []string{"frontend", "stage", "reason"})
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_token_refreshes_total", Help: "Token refreshes by frontend and outcome: ok, dead_token, untrusted, client_auth, idp_error.",
	}, []string{"frontend", "outcome"})
	m.refreshWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cloakroom_token_refresh_wait_seconds", Help: "How long requests waited for a token refresh.", Buckets: buckets,
	})
	m.logouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_logouts_total", Help: "Logouts by frontend, kind (user, backchannel, frontchannel) and result.",
	}, []string{"frontend", "kind", "result"})
	m.rejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_rejections_total", Help: "Requests refused before reaching an upstream, by frontend and reason (csrf, rate_limit, policy, ...).",
	}, []string{"frontend", "reason"})
	m.clientAuth = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_client_auth_failures_total", Help: "Token requests the identity provider refused for the gateway's client credentials (invalid_client or 401), by grant: a configuration fault.",
	}, []string{"grant"})
	m.limitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cloakroom_rate_limit_store_errors_total", Help: "Rate-limit checks the shared store (rate_limit.store: session) could not answer; each let its request through.",
	})
	m.reg.MustRegister(m.requests, m.duration, m.upstream, m.logins, m.refreshes, m.refreshWait, m.logouts, m.rejections, m.clientAuth, m.limitErrors)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry exposes the registry for extra collectors (e.g. store gauges).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Frontend is the view of m that counts the events of one frontend under
// its name ("" for the implicit one). It is a small value: take it once
// per frontend, when the frontend is built.
func (m *Metrics) Frontend(name string) Frontend { return Frontend{m: m, name: name} }

// Frontend counts one frontend's events; see Metrics.Frontend.
type Frontend struct {
	m    *Metrics
	name string
}

// Login counts a login event.
func (f Frontend) Login(stage, reason string) {
	f.m.logins.WithLabelValues(f.name, stage, reason).Inc()
}

// Logout counts a logout.
func (f Frontend) Logout(kind, result string) {
	f.m.logouts.WithLabelValues(f.name, kind, result).Inc()
}

// Refresh counts a refresh and how long its request waited.
func (f Frontend) Refresh(outcome string, wait time.Duration) {
	f.m.refreshes.WithLabelValues(f.name, outcome).Inc()
	f.m.refreshWait.Observe(wait.Seconds())
}

// Rejection counts a request refused at the edge.
func (f Frontend) Rejection(reason string) { f.m.rejections.WithLabelValues(f.name, reason).Inc() }

// Upstream records an upstream call's time to response headers.
func (f Frontend) Upstream(route string, d time.Duration) {
	k := routeLabels{f.name, route}
	f.m.upstreamChildren.get(k, func() prometheus.Observer { return f.m.upstream.WithLabelValues(k.frontend, k.route) }).Observe(d.Seconds())
}

// ClientAuthFailure counts a token request refused for the client's
// credentials; grant is one of a few OAuth grant names.
func (m *Metrics) ClientAuthFailure(grant string) { m.clientAuth.WithLabelValues(grant).Inc() }

// RateLimitStoreError counts a rate-limit check the shared store could
// not answer, which let its request through.
func (m *Metrics) RateLimitStoreError() { m.limitErrors.Inc() }

// methodClass folds methods into a bounded set.
func methodClass(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "read"
	case http.MethodOptions:
		return "options"
	default:
		return "write"
	}
}

// Observe records one finished request of frontend ("" for the implicit
// one, and for a request matched to no frontend).
func (m *Metrics) Observe(frontend, route, method string, code int, d time.Duration) {
	k := reqLabels{frontend, route, methodClass(method), code}
	m.reqChildren.get(k, func() prometheus.Counter {
		return m.requests.WithLabelValues(k.frontend, k.route, k.class, strconv.Itoa(k.code))
	}).Inc()
	rk := routeLabels{frontend, route}
	m.durationChildren.get(rk, func() prometheus.Observer { return m.duration.WithLabelValues(rk.frontend, rk.route) }).Observe(d.Seconds())
}
