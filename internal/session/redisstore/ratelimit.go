package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// limitTimeout bounds one rate-limit check, so that a stalled Redis delays
// a request by at most this much before the check fails open.
const limitTimeout = 250 * time.Millisecond

// gcra is the generic cell rate algorithm, a token bucket kept as one
// number: KEYS[1] holds the theoretical arrival time (TAT) in microseconds
// of Redis's own clock, so instances whose clocks disagree still share one
// budget. ARGV[1] is the emission interval (microseconds per event),
// ARGV[2] the burst. It returns 0 when the event is allowed (and records
// it), else the microseconds until it would be. The key expires when the
// bucket is full again, so idle clients leave nothing behind.
var gcra = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + interval
local wait = new - burst * interval - now
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
return 0
`)

// Limiter limits events per key with counters in Redis, so that every
// instance using the same Redis and name shares one budget per key. Each
// check is one round trip (EVALSHA of an atomic GCRA script). Keys are
// stored as SHA-256 hashes, never as given (they are session tickets and
// IP addresses): {P}:r:<name>:<hex>.
//
// When Redis cannot answer, Allow fails open: the event is allowed,
// OnError is called and the first failure of an outage is logged as a
// warning (the next after a success is logged again). Limits protect
// upstreams; they are not a correctness property, and the outage already
// shows in the session store's readiness check.
//
// It is safe for concurrent use.
type Limiter struct {
	s        *Store
	prefix   string
	interval int64 // microseconds per event
	burst    string

	// OnError, when set, is called for each check Redis could not answer.
	OnError func()

	failing atomic.Bool
}

// Limiter allows perSecond events per key with bursts of burst, counted
// under name (e.g. "api", "login") so that different limits do not share
// counters. perSecond must be positive and burst at least 1.
func (s *Store) Limiter(name string, perSecond float64, burst int) (*Limiter, error) {
	if !(perSecond > 0) || burst < 1 {
		return nil, fmt.Errorf("redisstore: limiter %q: rate %v and burst %d must be positive", name, perSecond, burst)
	}
	interval := int64(math.Round(1e6 / perSecond))
	if interval < 1 {
		interval = 1
	}
	return &Limiter{
		s:        s,
		prefix:   s.rateKeyPrefix() + name + ":",
		interval: interval,
		burst:    strconv.Itoa(burst),
	}, nil
}

// rateKeyPrefix is {P}:r:. Rate-limit keys are single-key scripts, so the
// shared hash tag only keeps them with the sessions, on the same node.
func (s *Store) rateKeyPrefix() string {
	return s.lockPrefix[:len(s.lockPrefix)-len("l:")] + "r:"
}

// Allow takes one event for key; when none is left it says how long to
// wait. When Redis fails it allows the event (see Limiter).
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	sum := sha256.Sum256([]byte(key))
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	wait, err := gcra.Exec(ctx, l.s.client, []string{l.prefix + hex.EncodeToString(sum[:])}, []string{strconv.FormatInt(l.interval, 10), l.burst}).AsInt64()
	if err != nil {
		if l.OnError != nil {
			l.OnError()
		}
		if !l.failing.Swap(true) {
			l.s.log.Warn("redisstore: rate limit check failed; allowing requests until Redis answers", "error", err)
		}
		return true, 0
	}
	if l.failing.Swap(false) {
		l.s.log.Info("redisstore: rate limit checks work again")
	}
	if wait > 0 {
		return false, time.Duration(wait) * time.Microsecond
	}
	return true, 0
}
