package httpx

import (
	"net"
	"net/http"
	"time"
)

// NewTransport is the transport for every outbound call (upstreams, the
// identity provider): explicit dial (5s), TLS handshake (5s) and
// response-header timeouts (zero: none), idle connections kept 90s for
// reuse, idlePerHost of them per host, HTTP/2 where the server offers it
// over TLS.
func NewTransport(responseHeader time.Duration, idlePerHost int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: responseHeader,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   idlePerHost,
		ForceAttemptHTTP2:     true,
	}
}
