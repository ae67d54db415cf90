// Package metrics owns Cloakroom's Prometheus registry (one per server, no
// globals) and the request middleware. Every label has a bounded set of
// values: routes are the configured route names, never raw paths.
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

	// Children of the per-request instruments, by label values: the hot
	// path finds its counter with one map read instead of hashing and
	// validating label values on every request. Label sets are bounded,
	// so the maps stay small; they are copied on write and read without a
	// lock.
	reqChildren      children[reqLabels, prometheus.Counter]
	durationChildren children[string, prometheus.Observer]
	upstreamChildren children[string, prometheus.Observer]
}

type reqLabels struct {
	route, class string
	code         int
}

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
		Name: "cloakroom_requests_total", Help: "Requests by route, method class and status code.",
	}, []string{"route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cloakroom_request_duration_seconds", Help: "Whole-request latency by route.", Buckets: buckets,
	}, []string{"route"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cloakroom_upstream_duration_seconds", Help: "Time from sending to an upstream until its response headers, by route.", Buckets: buckets,
	}, []string{"route"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_logins_total", Help: "Logins by stage (started, completed, failed) and failure reason.",
	}, []string{"stage", "reason"})
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_token_refreshes_total", Help: "Token refreshes by outcome: ok, dead_token, untrusted, client_auth, idp_error.",
	}, []string{"outcome"})
	m.refreshWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cloakroom_token_refresh_wait_seconds", Help: "How long requests waited for a token refresh.", Buckets: buckets,
	})
	m.logouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_logouts_total", Help: "Logouts by kind (user, backchannel, frontchannel, operator) and result.",
	}, []string{"kind", "result"})
	m.rejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_rejections_total", Help: "Requests refused before reaching an upstream, by reason (csrf, rate_limit, policy, ...).",
	}, []string{"reason"})
	m.clientAuth = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cloakroom_client_auth_failures_total", Help: "Token requests the identity provider refused for the gateway's client credentials (invalid_client or 401), by grant: a configuration fault.",
	}, []string{"grant"})
	m.reg.MustRegister(m.requests, m.duration, m.upstream, m.logins, m.refreshes, m.refreshWait, m.logouts, m.rejections, m.clientAuth)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry exposes the registry for extra collectors (e.g. store gauges).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Login counts a login event.
func (m *Metrics) Login(stage, reason string) { m.logins.WithLabelValues(stage, reason).Inc() }

// Refresh counts a refresh and how long its request waited.
func (m *Metrics) Refresh(outcome string, wait time.Duration) {
	m.refreshes.WithLabelValues(outcome).Inc()
	m.refreshWait.Observe(wait.Seconds())
}

// ClientAuthFailure counts a token request refused for the client's
// credentials; grant is one of a few OAuth grant names.
func (m *Metrics) ClientAuthFailure(grant string) { m.clientAuth.WithLabelValues(grant).Inc() }

// Logout counts a logout.
func (m *Metrics) Logout(kind, result string) { m.logouts.WithLabelValues(kind, result).Inc() }

// Rejection counts a request refused at the edge.
func (m *Metrics) Rejection(reason string) { m.rejections.WithLabelValues(reason).Inc() }

// Upstream records an upstream call's time to response headers.
func (m *Metrics) Upstream(route string, d time.Duration) {
	m.upstreamChildren.get(route, func() prometheus.Observer { return m.upstream.WithLabelValues(route) }).Observe(d.Seconds())
}

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

// Observe records one finished request.
func (m *Metrics) Observe(route, method string, code int, d time.Duration) {
	k := reqLabels{route, methodClass(method), code}
	m.reqChildren.get(k, func() prometheus.Counter {
		return m.requests.WithLabelValues(k.route, k.class, strconv.Itoa(k.code))
	}).Inc()
	m.durationChildren.get(route, func() prometheus.Observer { return m.duration.WithLabelValues(route) }).Observe(d.Seconds())
}
