package httpx

import (
	"net"
	"net/http"
	"time"
)

// UpstreamIdlePerHost is how many idle connections an upstream transport
// keeps per host. It must cover the calls in flight at peak: with fewer,
// every call past the limit closes its connection and the next one dials
// again (under 256 concurrent clients and a 10 ms upstream, a limit of
// 128 meant a new TCP connection for about half the calls). An idle
// connection costs about 25 KB (two goroutines and their buffers).
const UpstreamIdlePerHost = 1024

// NewTransport is the transport for every outbound call (upstreams, the
// identity provider): explicit dial (5s), TLS handshake (5s) and
// response-header timeouts (zero: none), idle connections kept 90s for
// reuse, idlePerHost of them per host and no limit across hosts (the
// configured hosts are few), HTTP/2 where the server offers it over TLS.
func NewTransport(responseHeader time.Duration, idlePerHost int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: responseHeader,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   idlePerHost,
		ForceAttemptHTTP2:     true,
	}
}
