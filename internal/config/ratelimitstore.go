package config

import "strings"

// isRedisStore reports whether session.store names a Redis deployment,
// which rate_limit.store: session keeps its counters in.
func isRedisStore(s string) bool {
	for _, p := range []string{"redis://", "rediss://", "redis-sentinel://", "rediss-sentinel://", "valkey://", "valkeys://", "unix://"} {
		if strings.HasPrefix(s, p) {
			return len(s) > len(p)
		}
	}
	return false
}
