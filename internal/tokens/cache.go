package tokens

import (
	"strconv"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/oidc"
	"golang.org/x/sync/singleflight"
)

// Cache holds the client-credentials and exchanged tokens of one or more
// Sources (modes client, user_or_client without a session, exchange), and
// their fetches in flight: one request to the provider per token at a
// time, whichever Source asked. Sources that share a Cache
// (Options.Cache), such as the frontends of one gateway that call the same
// provider as the same service client, fetch each such token once between
// them.
//
// A token is found again only under everything that makes it what it is:
//
//   - who asked for it: the provider's issuer, the service client's client
//     ID (Options.Service) and the thumbprint of the client certificate it
//     presents, to which a provider may bind the token (RFC 8705 §3);
//   - the key it is bound to: the thumbprint of Options.DPoP, or "bearer";
//   - the route's scopes, resource and audience;
//   - for an exchanged token, a SHA-256 hash of the user's token it was
//     traded for (never the token itself).
//
// So Sources of other providers, other clients or other DPoP keys never
// get each other's tokens. The client's credentials (secret, signing
// keys, authentication method) are not part of the key: one client ID at
// one issuer is one client, and its token is the same whichever of its
// credentials asked for it.
//
// A Cache holds at most maxCache tokens: a full one drops its expired
// tokens first, then all of them (they are fetched again on demand). The
// Sources' own tables (refresh backoffs, recent cookie-mode refreshes) are
// per Source, as the sessions they are about. The zero value is ready; a
// Cache is safe for concurrent use.
type Cache struct {
	flight singleflight.Group // by key: fetches in flight

	mu sync.Mutex
	m  map[string]cachedTok
}

type cachedTok struct {
	token    string
	expiry   time.Time
	obtained time.Time
}

// get returns the token cached under key, due or not.
func (c *Cache) get(key string) (cachedTok, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[key]
	return t, ok
}

// put caches t under key; now judges which tokens have expired when the
// cache is full.
func (c *Cache) put(key string, t cachedTok, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]cachedTok)
	}
	if len(c.m) >= maxCache {
		for k, old := range c.m {
			if !now.Before(old.expiry) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCache {
			clear(c.m)
		}
	}
	c.m[key] = t
}

// cacheScope is the part of a cached token's key that says who holds it:
// service's issuer, client ID and client certificate, and the key dpop
// (nil: none) binds it to. Each part is quoted, so no value can pass for
// another's.
func cacheScope(service *oidc.Client, dpop *oidc.DPoPKey) string {
	var iss, id, x5t string
	if service != nil {
		iss, id, x5t = service.Issuer(), service.ClientID(), service.CertificateThumbprint()
	}
	bind := "bearer"
	if dpop != nil {
		bind = "dpop:" + dpop.JKT()
	}
	return strconv.Quote(iss) + " " + strconv.Quote(id) + " " + strconv.Quote(x5t) + " " + strconv.Quote(bind)
}
