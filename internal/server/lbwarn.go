package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
)

// lbWarnAfter is how many requests carrying X-Forwarded-For from peers
// outside trusted_proxies make lbWarning speak. One such request may be a
// client sending the header itself; this many, a proxy or load balancer in
// front of the gateway that trusted_proxies does not name.
const lbWarnAfter = 20

// lbWarning notices that Cloakroom runs behind a proxy or load balancer
// that trusted_proxies does not list: per-IP rate limits then see that
// proxy as the only client, and one user's budget becomes the whole
// site's. It counts, across every peer, the requests that carry
// X-Forwarded-For from a peer not in trusted_proxies; the lbWarnAfter-th
// logs one warning naming its peer and the fix, and from then on /readyz
// carries the same sentence under "warnings" (readiness is unchanged).
// Each build of the gateway has its own, so a reload that fixes
// trusted_proxies clears it. Requests without the header cost one map
// lookup; once it has spoken, those with it cost one atomic load.
type lbWarning struct {
	trusted []netip.Prefix
	log     *slog.Logger
	n       atomic.Int64
	msg     atomic.Pointer[string] // set once, by the lbWarnAfter-th request
}

func newLBWarning(trusted []netip.Prefix, log *slog.Logger) *lbWarning {
	return &lbWarning{trusted: trusted, log: log}
}

// observe counts r when it carries X-Forwarded-For from a peer outside
// trusted_proxies. Only the peer's parsed address is ever named, never
// the header's contents.
func (l *lbWarning) observe(r *http.Request) {
	if _, ok := r.Header["X-Forwarded-For"]; !ok || l.msg.Load() != nil {
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range l.trusted {
		if p.Contains(addr) {
			return
		}
	}
	if l.n.Add(1) != lbWarnAfter {
		return
	}
	fix := fmt.Sprintf("trusted_proxies: [%s]", netip.PrefixFrom(addr, addr.BitLen()))
	msg := fmt.Sprintf("requests with X-Forwarded-For keep arriving from %s, which trusted_proxies does not list: per-IP rate limits count everyone behind it as one client; if it is your proxy or load balancer, add it or its network (%s)", addr, fix)
	l.msg.Store(&msg)
	l.log.Warn("requests with X-Forwarded-For keep arriving from a peer that trusted_proxies does not list: per-IP rate limits count everyone behind it as one client; if it is your proxy or load balancer, add it or its network to trusted_proxies",
		"peer", addr.String(), "fix", fix)
}

// warnings are lbWarning's entry for /readyz: none until it has spoken.
func (l *lbWarning) warnings() map[string]string {
	if m := l.msg.Load(); m != nil {
		return map[string]string{"trusted_proxies": *m}
	}
	return nil
}
