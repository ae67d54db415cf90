package server

import (
	"errors"
	"fmt"

	"github.com/cloakroom/cloakroom/internal/config"
	"github.com/cloakroom/cloakroom/internal/ratelimit"
	"github.com/cloakroom/cloakroom/internal/session/redisstore"
)

// limiter is what the API and login limits need of their counters:
// ratelimit.Limiter keeps them in this process (rate_limit.store: local),
// redisstore.Limiter in the Redis session store, one budget shared by
// every instance (rate_limit.store: session).
type limiter = ratelimit.Allower

var (
	_ limiter = (*ratelimit.Limiter)(nil)
	_ limiter = (*redisstore.Limiter)(nil)
)

// limiter returns the frontend's limit named name ("api", "login"):
// perSecond events per client key, bursts of burst. Shared counters are
// named after the frontend too, so frontends keep separate budgets as
// they do in process; when Redis cannot answer a check, the request
// passes (see redisstore.Limiter), counted in
// cloakroom_rate_limit_store_errors_total.
func (f *frontend) limiter(name string, perSecond float64, burst int) (limiter, error) {
	if f.cfg.RateLimit.Store != config.RateLimitSession {
		return ratelimit.New(perSecond, burst, f.sh.o.Now), nil
	}
	rs, ok := f.sh.store.(*redisstore.Store)
	if !ok {
		return nil, errors.New("rate_limit.store: session needs a Redis session.store")
	}
	l, err := rs.Limiter(name+":"+f.name, perSecond, burst)
	if err != nil {
		return nil, fmt.Errorf("rate_limit.store: %w", err)
	}
	l.OnError = f.sh.met.RateLimitStoreError
	return l, nil
}
