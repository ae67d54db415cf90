package config

import (
	"strings"
	"testing"
)

func TestRateLimitStore(t *testing.T) {
	redis := strings.Replace(minimal, "store: memory", "store: redis://127.0.0.1:6379/0", 1)
	tests := []struct {
		name string
		data string
		want []Problem
		// store is rate_limit.store when there is no problem.
		store string
	}{
		{"default: local", minimal, nil, ""},
		{"local", minimal + "rate_limit: {store: local}\n", nil, RateLimitLocal},
		{"session on redis", redis + "rate_limit: {store: session}\n", nil, RateLimitSession},
		{"session on rediss", strings.Replace(redis, "redis://", "rediss://", 1) + "rate_limit: {store: session}\n", nil, RateLimitSession},
		{"session on memory", minimal + "rate_limit:\n  store: session\n", []Problem{
			{Line: 10, Key: "rate_limit.store", Msg: "session needs a Redis session.store"}}, ""},
		{"session on file", strings.Replace(minimal, "store: memory", "store: file:./s.db", 1) + "rate_limit:\n  store: session\n", []Problem{
			{Line: 10, Key: "rate_limit.store", Msg: "session needs a Redis session.store"}}, ""},
		{"unknown", minimal + "rate_limit:\n  store: redis\n", []Problem{
			{Line: 10, Key: "rate_limit.store", Msg: `must be local or session, not "redis"`}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, withoutNotServed(problemsOf(t, tc.data, nil)), tc.want)
			if tc.want != nil {
				return
			}
			cfg, err := Parse("cloakroom.yaml", []byte(tc.data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.RateLimit.Store != tc.store {
				t.Errorf("rate_limit.store %q, want %q", cfg.RateLimit.Store, tc.store)
			}
		})
	}
}
