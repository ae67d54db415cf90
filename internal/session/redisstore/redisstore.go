// Package redisstore is a session.Store and session.Locker on Redis or
// Valkey (standalone, Sentinel or Cluster), so that many Cloakroom
// instances share sessions.
//
// # Reads
//
// Get uses server-assisted client-side caching (RESP3 CLIENT TRACKING): a
// hot session is served from process memory, and Redis tells every
// instance that cached a key the moment any client changes, deletes or
// expires it. A cached entry lives at most CacheTTL and never past the
// key's own expiry. When the connection drops, its cache is dropped with it.
//
// Invalidations travel on the same connection as every other command (the
// store keeps one connection per Redis node, auto-pipelined, and all its
// keys on one node), so they are ordered with the replies:
//
//   - A Get after this Store's own Set, Delete or DeleteTagged returns
//     the new state: each write waits for a fence read behind it, which
//     Redis answers only after the write's own invalidations.
//   - A Get after any reply that shows a write made through another
//     instance returns that write or a later one. In particular a Get
//     after Lock sees whatever the previous holder saved before unlocking,
//     which is what token refresh relies on.
//   - Otherwise, a Get may serve the old value until the invalidation
//     message is read: usually microseconds, a few milliseconds under load.
//
// # Key layout
//
// With the default Prefix "cloakroom:" (P below is the prefix without its
// trailing colon):
//
//	{P}:v:<key>   string   the entry: its tags, then its value; PX ttl
//	{P}:i:<tag>   hash     keys set with tag, as fields with empty values;
//	                       TTL extended to the longest entry
//	{P}:l:<key>   string   lock owner's random token, PX ttl
//
// An entry's string starts with its tags (a count byte, then each tag as
// a 2-byte big-endian length and its bytes), which Get strips and the
// scripts read to update the indexes: an entry costs one key. A tag index
// is a hash rather than a set because Redis keeps a small hash of short
// fields (up to 128 fields of up to 64 bytes) as one compact listpack,
// where Redis 7.0 keeps every set of strings as a hash table: with a
// session's subject and IdP session id each indexing a session or two, a
// hash costs about a third of a set. See docs/performance.md for the
// arithmetic per session.
//
// Earlier versions kept an entry as {P}:e:<key> (the value), {P}:m:<key>
// (a set of its tags) and {P}:t:<tag> (sets of keys). Those still work:
// Get falls back to {P}:e:<key>, Tagged, DeleteTagged and Delete cover both
// layouts, and a Set of a key moves it to the current one. An entry of the
// old layout therefore lasts at most until its next write or its expiry.
// An instance of an earlier version does not read the current layout: a
// rolling upgrade signs out, on old instances, the users whose sessions a
// new instance wrote (and the session record itself changed too, see
// package session).
//
// Every key shares the hash tag {P}, so each Lua script below touches one
// Cluster slot and runs atomically: an entry and its index entries never
// disagree, even in a Cluster; and locks live on the same node as the
// entries, which gives the ordering above. The price is that one master
// holds all of one prefix's sessions (replicas still give failover);
// deployments that outgrow one master can shard by prefix.
//
// Tag indexes are exact except for expiry: an entry that expires leaves
// its key in the tag indexes until Tagged or DeleteTagged drops it, and
// each index expires itself once its longest-lived entry has.
//
// # Failures
//
// # Replicas
//
// Redis replicates asynchronously: a write the primary acknowledged is lost
// if a replica that never received it is promoted. So a durable Set (every
// Set except those whose context session.Lossy marks: idle-timeout touches
// and replay markers) is followed, on the same connection, by WAIT: it succeeds only
// once the replicas have acknowledged it, within wait_timeout (default 500ms),
// and otherwise returns an error wrapping ErrNotReplicated, which the
// gateway answers with 503. The write itself did reach the primary, so a
// later read from it sees the write; only a failover can drop it. Lock
// waits the same way (see Lock), so that a refresh is refused before it
// spends a refresh token whose successor could not be kept.
//
// By default (wait_replicas=auto) the store waits for as many replicas as
// the primary, with the same replication ID, has reported connected in the
// last minute (INFO replication, asked at most every 5s and after every
// write the replicas did not acknowledge), while it has reported one in
// that minute. Every replica, not one: during a Sentinel failover the old
// primary keeps taking writes after a replica was promoted, and another
// replica that still follows it would acknowledge writes the promoted one
// never receives; and a replica that disconnects cannot be told apart from
// one promoted away. The price is that durable writes fail, for up to a
// minute, when one of several replicas stops. So a standalone Redis never waits;
// an old primary whose replica was just promoted away still makes writes
// wait, and fail, for that minute, which covers the window before clients
// follow the failover; the promoted primary (a new replication ID) is
// written to without waiting while it has no replica of its own; and a
// deployment left without any replica for longer than the minute writes
// without waiting again. wait_replicas=N waits for N replicas always (0
// never waits), as strict as Redis's min-replicas-to-write.
//
// # Failures
//
// Connection failures are returned as errors wrapping the cause, never as
// session.ErrNotFound, which means a real miss. Idempotent operations are
// retried up to 4 attempts with jittered backoff (about 200ms in all),
// then fail; each attempt is bounded by the dial and read timeouts (3s
// each unless the URL says otherwise) whatever the caller's context, so a
// refused connection fails in well under a second and a silent network
// in seconds. The client reconnects lazily, on the next operation once
// Redis is back, so Ping from a readiness probe both detects an outage and
// restores the connection.
package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/cloakroom/cloakroom/internal/session"
)

var (
	_ session.Store  = (*Store)(nil)
	_ session.Locker = (*Store)(nil)
)

// Defaults for Options and the client.
const (
	DefaultPrefix   = "cloakroom:"
	DefaultCacheTTL = time.Minute

	// dialTimeout and readTimeout apply unless the URL sets dial_timeout
	// or write_timeout (which rueidis uses for reads too).
	dialTimeout = 3 * time.Second
	readTimeout = 3 * time.Second
	// cacheBytesPerConn bounds the client-side cache of each connection,
	// of which there is one per Redis node.
	cacheBytesPerConn = 64 << 20
	// maxAttempts bounds retries of idempotent commands after a
	// connection error.
	maxAttempts = 4
	// unlockTimeout bounds the compare-and-delete that releases a lock.
	unlockTimeout = 2 * time.Second
	// defaultWaitTimeout bounds how long a durable write waits for a
	// replica unless the URL sets wait_timeout.
	defaultWaitTimeout = 500 * time.Millisecond
	// replicaCheckEvery spaces the INFO replication checks of the default
	// wait_replicas=auto; replicaMemory is how long a replica once seen is
	// still waited for.
	replicaCheckEvery = 5 * time.Second
	replicaMemory     = time.Minute
	// lockWaitMin and lockWaitJitter space the attempts to take a held
	// lock.
	lockWaitMin    = 10 * time.Millisecond
	lockWaitJitter = 40 * time.Millisecond
)

// Options configure a Store.
type Options struct {
	// URL names the server(s). Supported forms:
	//
	//	redis://[user:pass@]host[:port][/db]         standalone (or a Cluster seed)
	//	rediss://...                                 the same over TLS
	//	redis://host1:port1,host2:port2/             Cluster: several seeds
	//	redis://host1:port1?addr=host2:port2         Cluster: the same, rueidis style
	//	redis-sentinel://[user:pass@]s1:26379[,s2:26379...][/db]?master_set=NAME
	//	redis-sentinel://s1:26379,s2:26379/0#NAME    the master name as fragment
	//	rediss-sentinel://...                        Sentinel and master over TLS
	//	unix:///path/to/redis.sock?db=N
	//
	// A Cluster is detected by asking the server; valkey:// and valkeys://
	// are synonyms of redis:// and rediss://. The user and password
	// authenticate to the data nodes; for Sentinels that need their own,
	// add sentinel_username and sentinel_password query parameters.
	// rueidis query parameters also apply: dial_timeout and write_timeout
	// (durations, default 3s), client_name (default "cloakroom"),
	// skip_verify (TLS without verification: insecure), protocol=2 (RESP2,
	// which disables client-side caching). This package's own parameters:
	// wait_replicas (auto, the default, or a number of replicas) and
	// wait_timeout (a duration, default 500ms): see Replicas above.
	URL string
	// Prefix starts every key; default "cloakroom:". It must not contain
	// braces: the store wraps it in a Cluster hash tag.
	Prefix string
	// CacheTTL bounds how long Get serves an entry from the client-side
	// cache; default 1m. Invalidation is immediate regardless.
	CacheTTL time.Duration
	// DisableCache turns client-side caching off: every Get asks Redis.
	DisableCache bool
	// Logger receives failures that have no caller to return to (a lost
	// unlock); default discards.
	Logger *slog.Logger
}

// Store is a session.Store and session.Locker on one Redis deployment.
// It is safe for concurrent use.
type Store struct {
	client   rueidis.Client
	log      *slog.Logger
	cacheTTL time.Duration

	entryPrefix string // {P}:v:
	indexPrefix string // {P}:i:
	lockPrefix  string // {P}:l:
	fenceKey    string // {P}:fence, never written

	// The layout of earlier versions (see Key layout), still read.
	oldEntryPrefix string // {P}:e:
	oldMetaPrefix  string // {P}:m:
	oldTagPrefix   string // {P}:t:

	wait waitPolicy
	// mu guards checked and seen, the times of the last INFO replication
	// and of the last one that reported a connected replica; replID, the
	// primary's replication ID at seen; and most, the most replicas it
	// reported since mostAt, when it last reported that many.
	mu      sync.Mutex
	checked time.Time
	seen    time.Time
	replID  string
	most    int64
	mostAt  time.Time

	closeOnce sync.Once
}

// New connects to o.URL and checks that the server answers. A malformed
// URL or an unreachable server is an error naming the host, never the
// password.
func New(o Options) (*Store, error) {
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redisstore: prefix %q must not contain braces", prefix)
	}
	if o.CacheTTL < 0 {
		return nil, fmt.Errorf("redisstore: negative cache TTL %v", o.CacheTTL)
	}
	cacheTTL := o.CacheTTL
	if cacheTTL == 0 {
		cacheTTL = DefaultCacheTTL
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt, wait, err := clientOption(o.URL)
	if err != nil {
		return nil, err
	}
	if o.DisableCache {
		opt.DisableCache = true
	}
	hosts := strings.Join(opt.InitAddress, ",")
	client, err := rueidis.NewClient(opt)
	if err != nil && !opt.DisableCache && errors.Is(err, rueidis.ErrNoCache) {
		log.Warn("redisstore: server lacks RESP3 client-side caching; every Get goes to Redis", "hosts", hosts)
		opt.DisableCache = true
		client, err = rueidis.NewClient(opt)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: connect to %s: %w", hosts, err)
	}
	tag := "{" + strings.TrimSuffix(prefix, ":") + "}:"
	if tag == "{}:" {
		tag = "{" + prefix + "}"
	}
	s := &Store{
		client:      client,
		log:         log,
		cacheTTL:    cacheTTL,
		entryPrefix: tag + "v:",
		indexPrefix: tag + "i:",
		lockPrefix:  tag + "l:",
		fenceKey:    tag + "fence",
		wait:        wait,

		oldEntryPrefix: tag + "e:",
		oldMetaPrefix:  tag + "m:",
		oldTagPrefix:   tag + "t:",
	}
	ctx, cancel := context.WithTimeout(context.Background(), opt.Dialer.Timeout+opt.ConnWriteTimeout)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("redisstore: connect to %s: %w", hosts, err)
	}
	return s, nil
}

// ErrNotReplicated is wrapped by the error of a durable write that no
// replica acknowledged in time. The primary holds the write.
var ErrNotReplicated = errors.New("no replica acknowledged the write in time")

// waitPolicy is how durable writes wait for replicas.
type waitPolicy struct {
	auto     bool  // wait for the replicas seen recently, while one was
	replicas int64 // otherwise: this many, 0 for none
	timeout  time.Duration
}

// parseWait takes this package's own query parameters out of q.
func parseWait(q url.Values) (waitPolicy, error) {
	w := waitPolicy{auto: true, timeout: defaultWaitTimeout}
	if v := q.Get("wait_replicas"); v != "" && v != "auto" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return w, fmt.Errorf("redisstore: invalid URL: wait_replicas %q is not auto or a number of replicas", v)
		}
		w.auto, w.replicas = false, n
	}
	if v := q.Get("wait_timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond {
			return w, fmt.Errorf("redisstore: invalid URL: wait_timeout %q is not a duration of at least 1ms", v)
		}
		w.timeout = d
	}
	q.Del("wait_replicas")
	q.Del("wait_timeout")
	return w, nil
}

// clientOption turns the URL into rueidis options, adding the sentinel
// and host-list forms and this package's timeouts, and returns this
// package's replica wait policy.
func clientOption(raw string) (rueidis.ClientOption, waitPolicy, error) {
	opt, err := clientOptionOnly(raw)
	if err != nil {
		return opt, waitPolicy{}, err
	}
	u, _ := url.Parse(raw)
	w, err := parseWait(u.Query())
	return opt, w, err
}

func clientOptionOnly(raw string) (rueidis.ClientOption, error) {
	var opt rueidis.ClientOption
	if raw == "" {
		return opt, errors.New("redisstore: empty URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return opt, urlError(raw)
	}
	q := u.Query()
	if _, err := parseWait(q); err != nil {
		return opt, err
	}
	sentinel := false
	switch u.Scheme {
	case "redis-sentinel", "valkey-sentinel":
		u.Scheme, sentinel = "redis", true
	case "rediss-sentinel", "valkeys-sentinel":
		u.Scheme, sentinel = "rediss", true
	case "redis", "rediss", "valkey", "valkeys", "unix":
	default:
		return opt, fmt.Errorf("redisstore: URL scheme %q is not redis, rediss, redis-sentinel, rediss-sentinel or unix", u.Scheme)
	}
	if sentinel {
		if u.Fragment != "" && !q.Has("master_set") {
			q.Set("master_set", u.Fragment)
		}
		if q.Get("master_set") == "" {
			return opt, errors.New("redisstore: a redis-sentinel URL needs the master name: ?master_set=NAME or #NAME")
		}
	}
	u.Fragment, u.RawFragment = "", ""
	if u.Scheme != "unix" {
		if u.Host == "" {
			return opt, errors.New("redisstore: URL has no host")
		}
		hosts := strings.Split(u.Host, ",")
		u.Host = hosts[0]
		for _, h := range hosts[1:] {
			if h != "" {
				q.Add("addr", h)
			}
		}
	}
	u.RawQuery = q.Encode()
	opt, err = rueidis.ParseURL(u.String())
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return opt, urlError(raw)
	}
	if err != nil {
		// rueidis's messages name the bad parameter, not the password;
		// the URL itself is never echoed.
		return opt, fmt.Errorf("redisstore: invalid URL: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = dialTimeout
	}
	if opt.ConnWriteTimeout == 0 {
		opt.ConnWriteTimeout = readTimeout
	}
	if opt.ClientName == "" {
		opt.ClientName = "cloakroom"
	}
	if sentinel {
		opt.Sentinel.Dialer = opt.Dialer
		opt.Sentinel.TLSConfig = opt.TLSConfig
		opt.Sentinel.Username = q.Get("sentinel_username")
		opt.Sentinel.Password = q.Get("sentinel_password")
		opt.Sentinel.ClientName = opt.ClientName
	}
	opt.CacheSizeEachConn = cacheBytesPerConn
	// One connection per node keeps invalidations ordered with replies.
	opt.PipelineMultiplex = -1
	opt.RetryDelay = retryDelay
	return opt, nil
}

// urlError describes why raw does not parse without quoting it: Go's own
// messages can include fragments of the password.
func urlError(raw string) error {
	// Parse again with the user info cut out: if that works, the problem
	// is in the user info.
	redacted := raw
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			redacted = raw[:i+3] + "REDACTED@" + rest[at+1:]
		}
	}
	if redacted != raw {
		if _, err := url.Parse(redacted); err == nil {
			return errors.New("redisstore: invalid URL: bad user or password (percent-encode special characters)")
		}
	}
	var ue *url.Error
	if _, err := url.Parse(redacted); errors.As(err, &ue) {
		var esc url.EscapeError
		if errors.As(ue.Err, &esc) {
			return errors.New("redisstore: invalid URL: bad percent-escape")
		}
		return fmt.Errorf("redisstore: invalid URL: %v", ue.Err)
	}
	return errors.New("redisstore: invalid URL")
}

// retryDelay retries idempotent commands after connection errors a few
// times with jittered backoff (about 25, 50, 100ms), then gives up so that
// an outage surfaces as an error instead of a hang.
func retryDelay(attempts int, _ rueidis.Completed, _ error) time.Duration {
	if attempts >= maxAttempts {
		return -1
	}
	base := 25 * time.Millisecond << (attempts - 1)
	return base/2 + mrand.N(base/2+1)
}

// Ping checks that the Redis node holding this store's keys answers; for
// readiness probes. It reconnects if the connection was lost.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Do(ctx, s.fence()).Error(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// eval runs a script, all of whose keys share the store's hash tag. The
// scripts are idempotent, so a connection error retries them.
//
// With fence, a cheap read of the same slot follows in the same round
// trip. Redis sends the writer's own invalidation messages after the
// script's reply but before the next reply on the connection, so once the
// fence has answered, this process's cache no longer holds what the
// script changed: a Get right after Set reads the new value.
func (s *Store) eval(ctx context.Context, script string, fence bool, keys, args []string) rueidis.RedisResult {
	cmd := s.client.B().Eval().Script(script).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build().ToRetryable()
	if !fence {
		return s.client.Do(ctx, cmd)
	}
	return s.client.DoMulti(ctx, cmd, s.fence())[0]
}

// fence is a read of a key that never exists, in the store's slot.
func (s *Store) fence() rueidis.Completed {
	return s.client.B().Exists().Key(s.fenceKey).Build().ToRetryable()
}

// Get implements session.Store. The returned slice is the caller's.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.get(ctx, s.entryPrefix+key)
	if errors.Is(err, session.ErrNotFound) {
		// Written by an earlier version: the value alone.
		v, err := s.get(ctx, s.oldEntryPrefix+key)
		if err != nil {
			return nil, err
		}
		return []byte(v), nil
	}
	if err != nil {
		return nil, err
	}
	n, ok := tagsLen(v)
	if !ok {
		return nil, errors.New("redisstore: get: malformed entry")
	}
	// The string may be shared with the client-side cache: copy it.
	return []byte(v[n:]), nil
}

func (s *Store) get(ctx context.Context, k string) (string, error) {
	v, err := s.client.DoCache(ctx, s.client.B().Get().Key(k).Cache(), s.cacheTTL).ToString()
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return "", session.ErrNotFound
		}
		return "", fmt.Errorf("redisstore: get: %w", err)
	}
	return v, nil
}

// appendTags appends the tags that start an entry's string: a count byte,
// then each tag as a 2-byte big-endian length and its bytes (tagsOf in the
// scripts reads them).
func appendTags(b []byte, tags []string) ([]byte, error) {
	if len(tags) > 255 {
		return nil, fmt.Errorf("redisstore: set: %d tags, at most 255", len(tags))
	}
	b = append(b, byte(len(tags)))
	for _, t := range tags {
		if len(t) > 0xffff {
			return nil, errors.New("redisstore: set: a tag is longer than 65535 bytes")
		}
		b = append(append(b, byte(len(t)>>8), byte(len(t))), t...)
	}
	return b, nil
}

// tagsLen is the length of the tags that start entry string v.
func tagsLen(v string) (int, bool) {
	if len(v) == 0 {
		return 0, false
	}
	n := 1
	for range int(v[0]) {
		if len(v) < n+2 {
			return 0, false
		}
		n += 2 + (int(v[n])<<8 | int(v[n+1]))
		if n > len(v) {
			return 0, false
		}
	}
	return n, true
}

// tagsOf is the scripts' reader of appendTags's format: the tags of entry
// string v (false when there is no entry).
const tagsOf = `
local function tagsOf(v)
  local tags = {}
  if not v then
    return tags
  end
  local pos = 2
  for _ = 1, string.byte(v, 1) do
    local len = string.byte(v, pos) * 256 + string.byte(v, pos + 1)
    tags[#tags + 1] = string.sub(v, pos + 2, pos + 1 + len)
    pos = pos + 2 + len
  end
  return tags
end
`

// unindex removes key k from the indexes of its entry, in either layout.
// Arguments: the entry's key (current layout), the index prefix, the old
// tag list key and the old tag-set prefix.
const unindex = tagsOf + `
local function unindex(k, entry, ip, meta, tp)
  for _, t in ipairs(tagsOf(redis.call('GET', entry))) do
    redis.call('HDEL', ip .. t, k)
  end
  for _, t in ipairs(redis.call('SMEMBERS', meta)) do
    redis.call('SREM', tp .. t, k)
  end
end
`

// setScript replaces an entry, in the current layout, and its index
// memberships.
// KEYS: entry, old entry, old tag list. ARGV: entry string, ttl ms, index
// prefix, old tag-set prefix, key, tags...
const setScript = unindex + `
local k = ARGV[5]
unindex(k, KEYS[1], ARGV[3], KEYS[3], ARGV[4])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local ttl = tonumber(ARGV[2])
for i = 6, #ARGV do
  local ik = ARGV[3] .. ARGV[i]
  redis.call('HSET', ik, k, '')
  if redis.call('PTTL', ik) < ttl then
    redis.call('PEXPIRE', ik, ARGV[2])
  end
end
return 1
`

// Set implements session.Store. A ttl below 1ms deletes the entry.
func (s *Store) Set(ctx context.Context, key string, v []byte, ttl time.Duration, tags ...string) error {
	if ttl <= 0 {
		return s.Delete(ctx, key)
	}
	ms := max(ttl.Milliseconds(), 1)
	entry, err := appendTags(make([]byte, 0, 1+len(v)+64*len(tags)), tags)
	if err != nil {
		return err
	}
	args := make([]string, 0, 5+len(tags))
	// string(...) copies: the command may still be queued when a cancelled
	// caller gets its buffer back.
	args = append(args, string(append(entry, v...)), strconv.FormatInt(ms, 10), s.indexPrefix, s.oldTagPrefix, key)
	args = append(args, tags...)
	keys := []string{s.entryPrefix + key, s.oldEntryPrefix + key, s.oldMetaPrefix + key}
	n := int64(0)
	if !session.Lossy(ctx) {
		n = s.replicas(ctx)
	}
	if n == 0 {
		if err := s.eval(ctx, setScript, true, keys, args).Error(); err != nil {
			return fmt.Errorf("redisstore: set: %w", err)
		}
		return nil
	}
	// WAIT counts the replicas that acknowledged this connection's writes,
	// so it must follow the script on the same connection: rueidis sends a
	// DoMulti holding a blocking command on one dedicated connection, to
	// the node of the script's slot.
	cmd := s.client.B().Eval().Script(setScript).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	wait := s.client.B().Wait().Numreplicas(n).Timeout(max(s.wait.timeout.Milliseconds(), 1)).Build()
	res := s.client.DoMulti(ctx, cmd, wait)
	// The fence on the shared connection orders this process's cache
	// invalidations before the next Get, as for every other write.
	fenceErr := s.client.Do(ctx, s.fence()).Error()
	if err := res[0].Error(); err != nil {
		return fmt.Errorf("redisstore: set: %w", err)
	}
	got, err := res[1].AsInt64()
	if err != nil {
		return fmt.Errorf("redisstore: set: wait for replicas: %w", err)
	}
	if got < n {
		if s.wait.auto {
			s.mu.Lock()
			s.checked = time.Time{} // ask again on the next write
			s.mu.Unlock()
		}
		return fmt.Errorf("redisstore: set: %w (%d of %d within %v)", ErrNotReplicated, got, n, s.wait.timeout)
	}
	if fenceErr != nil {
		return fmt.Errorf("redisstore: set: %w", fenceErr)
	}
	return nil
}

// replicas is how many replicas a durable write waits for.
func (s *Store) replicas(ctx context.Context) int64 {
	if !s.wait.auto {
		return s.wait.replicas
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.checked) >= replicaCheckEvery {
		s.checked = now
		// INFO has no key: in a DoMulti with the fence it goes to the
		// node that holds the store's slot.
		res := s.client.DoMulti(ctx, s.fence(), s.client.B().Info().Section("replication").Build())
		if info, err := res[1].ToString(); err == nil {
			replicas, id := replication(info)
			n := int64(replicas)
			switch {
			case n > 0 && (id != s.replID || n >= s.most || now.Sub(s.mostAt) >= replicaMemory):
				s.seen, s.replID, s.most, s.mostAt = now, id, n, now
			case n > 0:
				// Fewer replicas than a minute ago: the missing one may
				// have been promoted away, so keep waiting for it.
				s.seen = now
			case id != s.replID:
				// A promoted primary: no write to it can be lost to a
				// replica that never saw it, since it has none.
				s.seen, s.replID, s.most = time.Time{}, "", 0
			}
		}
	}
	if !s.seen.IsZero() && now.Sub(s.seen) < replicaMemory {
		return max(s.most, 1)
	}
	return 0
}

// replication reads connected_slaves and master_replid from INFO
// replication.
func replication(info string) (replicas int, id string) {
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "connected_slaves:"); ok {
			replicas, _ = strconv.Atoi(v)
		} else if v, ok := strings.CutPrefix(line, "master_replid:"); ok {
			id = v
		}
	}
	return replicas, id
}

// deleteScript removes an entry, in either layout, and its index
// memberships.
// KEYS: entry, old entry, old tag list. ARGV: index prefix, old tag-set
// prefix, key.
const deleteScript = unindex + `
unindex(ARGV[3], KEYS[1], ARGV[1], KEYS[3], ARGV[2])
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
`

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.eval(ctx, deleteScript, true, []string{s.entryPrefix + key, s.oldEntryPrefix + key, s.oldMetaPrefix + key},
		[]string{s.indexPrefix, s.oldTagPrefix, key}).Error()
	if err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	return nil
}

// taggedScript lists a tag's live keys, in either layout, and drops the
// expired ones.
// KEYS: index, old tag set. ARGV: entry prefix, old entry prefix.
const taggedScript = `
local live = {}
for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. k) == 1 then
    live[#live + 1] = k
  else
    redis.call('HDEL', KEYS[1], k)
  end
end
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[2] .. k) == 1 then
    live[#live + 1] = k
  else
    redis.call('SREM', KEYS[2], k)
  end
end
return live
`

// Tagged implements session.Store.
func (s *Store) Tagged(ctx context.Context, tag string) ([]string, error) {
	keys, err := s.eval(ctx, taggedScript, false, []string{s.indexPrefix + tag, s.oldTagPrefix + tag},
		[]string{s.entryPrefix, s.oldEntryPrefix}).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: tagged: %w", err)
	}
	return keys, nil
}

// deleteTaggedScript deletes every entry of a tag, in either layout, with
// its other index memberships, and the tag's indexes themselves.
// KEYS: index, old tag set. ARGV: entry prefix, index prefix, old entry
// prefix, old tag-list prefix, old tag-set prefix.
const deleteTaggedScript = unindex + `
local n = 0
local function drop(k)
  local e, m = ARGV[1] .. k, ARGV[4] .. k
  unindex(k, e, ARGV[2], m, ARGV[5])
  n = n + redis.call('DEL', e, ARGV[3] .. k, m)
end
for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
  drop(k)
end
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  drop(k)
end
redis.call('DEL', KEYS[1], KEYS[2])
return n
`

// DeleteTagged implements session.Store.
func (s *Store) DeleteTagged(ctx context.Context, tag string) error {
	err := s.eval(ctx, deleteTaggedScript, true, []string{s.indexPrefix + tag, s.oldTagPrefix + tag},
		[]string{s.entryPrefix, s.indexPrefix, s.oldEntryPrefix, s.oldMetaPrefix, s.oldTagPrefix}).Error()
	if err != nil {
		return fmt.Errorf("redisstore: delete tagged: %w", err)
	}
	return nil
}

// unlockScript deletes a lock only if the caller still owns it.
// KEYS: lock. ARGV: token.
const unlockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`

// Lock implements session.Locker across every process sharing the Redis
// deployment. It polls every 10–50ms until the lock is free or ctx ends;
// a Redis error ends the wait at once. The lock expires after ttl (at
// least 1ms); unlock releases it only while this caller still owns it,
// so a holder that outlived ttl cannot release its successor's lock.
//
// Unless session.Lossy marks ctx, taking the lock is a durable write: it
// waits for the replicas as Set does, and when they do not acknowledge
// it, Lock releases the lock and fails with ErrNotReplicated. The work a
// lock guards, a token refresh, spends the session's refresh token at
// the provider; its result can only be saved where the lock could be
// taken durably, so during a failover the refresh is refused before it
// spends anything, rather than after.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("redisstore: lock ttl %v is below 1ms", ttl)
	}
	k := s.lockPrefix + key
	token := rand.Text()
	ms := ttl.Milliseconds()
	n := int64(0)
	if !session.Lossy(ctx) {
		n = s.replicas(ctx)
	}
	var timer *time.Timer
	for {
		cmd := s.client.B().Set().Key(k).Value(token).Nx().PxMilliseconds(ms).Build()
		var err error
		if n == 0 {
			err = s.client.Do(ctx, cmd).Error()
		} else {
			var final error
			if err, final = s.lockDurably(ctx, cmd, k, token, ttl, n); final != nil {
				return nil, final
			}
		}
		if err == nil {
			break
		}
		if !rueidis.IsRedisNil(err) {
			// The SET may still reach Redis after we stopped waiting for
			// its reply: release what may be ours rather than leave it
			// held for the whole ttl.
			go s.release(context.WithoutCancel(ctx), k, token, ttl)
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			return nil, fmt.Errorf("redisstore: lock: %w", err)
		}
		wait := lockWaitMin + mrand.N(lockWaitJitter)
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
	// Unlocking must work after the caller's context ended, but keeps
	// its values (trace ids).
	base := context.WithoutCancel(ctx)
	var once sync.Once
	return func() {
		once.Do(func() { s.release(base, k, token, ttl) })
	}, nil
}

// lockDurably sends cmd, the SET NX that takes lock k with token, and a
// WAIT for n replicas on one connection, as Set does. When the lock was
// taken but not acknowledged it releases it and returns, as final, an
// error wrapping ErrNotReplicated. Otherwise err is the SET's own, as
// for the plain SET: nil once taken, a Redis nil while another holds it.
func (s *Store) lockDurably(ctx context.Context, cmd rueidis.Completed, k, token string, ttl time.Duration, n int64) (err, final error) {
	wait := s.client.B().Wait().Numreplicas(n).Timeout(max(s.wait.timeout.Milliseconds(), 1)).Build()
	res := s.client.DoMulti(ctx, cmd, wait)
	if err := res[0].Error(); err != nil {
		return err, nil
	}
	got, err := res[1].AsInt64()
	if err == nil && got < n {
		s.mu.Lock()
		s.checked = time.Time{} // ask again on the next write
		s.mu.Unlock()
		err = fmt.Errorf("%w (%d of %d within %v)", ErrNotReplicated, got, n, s.wait.timeout)
	}
	if err == nil {
		// The fence on the shared connection orders the invalidations of
		// the previous holder's writes before the caller's next Get, as
		// the plain SET on that connection does.
		err = s.client.Do(ctx, s.fence()).Error()
	}
	if err != nil {
		s.release(context.WithoutCancel(ctx), k, token, ttl)
		if errors.Is(err, ErrNotReplicated) {
			return nil, fmt.Errorf("redisstore: lock: %w", err)
		}
		return nil, fmt.Errorf("redisstore: lock: wait for replicas: %w", err)
	}
	return nil, nil
}

// release deletes lock k if it still holds token, within unlockTimeout.
func (s *Store) release(ctx context.Context, k, token string, ttl time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, unlockTimeout)
	defer cancel()
	if err := s.eval(ctx, unlockScript, false, []string{k}, []string{token}).Error(); err != nil {
		s.log.Warn("redisstore: unlock failed; the lock expires by its TTL", "ttl", ttl, "err", err)
	}
}

// Close closes the client. Operations after Close fail.
func (s *Store) Close() error {
	s.closeOnce.Do(s.client.Close)
	return nil
}
