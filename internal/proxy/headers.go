package proxy

import (
	"net/http"
	"slices"
	"strings"
)

// Request headers a client could send to make an upstream believe something
// only a proxy in front of it may say: the client's address, the URL or
// host it asked for, the method. They are removed from every proxied
// request, also when the peer is in trusted_proxies; the gateway sets
// X-Forwarded-For/Host/Proto itself, after the removal (keeping only a
// trusted peer's X-Forwarded-For chain). Names match in any case and with
// "_" for "-", since CGI, WSGI and PHP read X_Real_IP as X-Real-IP.
const (
	// RFC 7239; ReverseProxy removes it too.
	headerForwarded = "Forwarded"
	// X-Forwarded itself and every X-Forwarded-*: -For, -Host, -Proto,
	// -Prefix, -Port, -Server, -Ssl, -Scheme, -Uri, ...
	headerXForwarded = "X-Forwarded"

	// The client's address, as CDNs and load balancers set it.
	headerRealIP               = "X-Real-IP"
	headerTrueClientIP         = "True-Client-IP"   // Akamai, Cloudflare Enterprise
	headerCFConnectingIP       = "CF-Connecting-IP" // Cloudflare
	headerFastlyClientIP       = "Fastly-Client-IP"
	headerClientIP             = "X-Client-IP"
	headerClusterClientIP      = "X-Cluster-Client-IP"
	headerOriginalForwardedFor = "X-Original-Forwarded-For" // ingress-nginx

	// The URL or host asked for, which some frameworks route on.
	headerOriginalURL  = "X-Original-URL" // IIS, Symfony: overrides the path routed on
	headerRewriteURL   = "X-Rewrite-URL"  // IIS, Symfony
	headerOriginalURI  = "X-Original-URI" // nginx auth_request
	headerHost         = "X-Host"
	headerOriginalHost = "X-Original-Host"

	// The method: an upstream that honours these would let a POST act as
	// a DELETE on a route whose apis[].methods allow only POST.
	headerHTTPMethodOverride = "X-HTTP-Method-Override"
	headerHTTPMethod         = "X-HTTP-Method"
	headerMethodOverride     = "X-Method-Override"
)

// spoofable are the exact names; headerXForwarded is matched as a prefix.
var spoofable = [...]string{
	headerForwarded,
	headerRealIP, headerTrueClientIP, headerCFConnectingIP, headerFastlyClientIP,
	headerClientIP, headerClusterClientIP, headerOriginalForwardedFor,
	headerOriginalURL, headerRewriteURL, headerOriginalURI,
	headerHost, headerOriginalHost,
	headerHTTPMethodOverride, headerHTTPMethod, headerMethodOverride,
}

// StrippedHeaders returns the names of the request headers the proxy
// removes, for documentation and tests; "X-Forwarded-*" stands for every
// name with that prefix.
func StrippedHeaders() []string {
	return append(slices.Clone(spoofable[:]), headerXForwarded, headerXForwarded+"-*")
}

// isSpoofable reports whether the header name is one the proxy removes.
func isSpoofable(name string) bool {
	// Every name starts with one of these: most headers are turned away
	// by their first byte.
	if name == "" || !strings.ContainsRune("xftcXFTC", rune(name[0])) {
		return false
	}
	n := len(headerXForwarded)
	if len(name) >= n && sameName(name[:n], headerXForwarded) && (len(name) == n || name[n] == '-' || name[n] == '_') {
		return true
	}
	for _, s := range spoofable {
		if len(s) == len(name) && sameName(name, s) {
			return true
		}
	}
	return false
}

// stripSpoofable removes the spoofable headers from h.
func stripSpoofable(h http.Header) {
	for k := range h {
		if isSpoofable(k) {
			delete(h, k)
		}
	}
}

// sameName compares two header names of equal length in ASCII case
// folding, with "_" and "-" the same.
func sameName(a, b string) bool {
	for i := 0; i < len(a); i++ {
		if fold(a[i]) != fold(b[i]) {
			return false
		}
	}
	return true
}

func fold(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}
