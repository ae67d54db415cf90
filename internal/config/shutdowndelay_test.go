package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestShutdownDelay(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		want  []Problem
		delay time.Duration // when there is no problem
	}{
		{"default: drain at once", minimal, nil, 0},
		{"five seconds", minimal + "admin_listen: 127.0.0.1:9090\nshutdown_delay: 5s\n", nil, 5 * time.Second},
		{"five minutes", minimal + "admin_listen: 127.0.0.1:9090\nshutdown_delay: 5m\n", nil, 5 * time.Minute},
		{"without admin_listen", minimal + "shutdown_delay: 5s\n", []Problem{
			{Line: 9, Key: "shutdown_delay", Msg: "is served only on admin_listen", Warning: true}}, 5 * time.Second},
		{"negative", minimal + "shutdown_delay: -1s\n", []Problem{
			{Line: 9, Key: "shutdown_delay", Msg: "must not be negative"}}, 0},
		{"above five minutes", minimal + "shutdown_delay: 301s\n", []Problem{
			{Line: 9, Key: "shutdown_delay", Msg: "5m1s is more than 5m0s"}}, 0},
		{"with frontends", strings.Replace(head, "frontends:\n", "shutdown_delay: 10m\nfrontends:\n", 1) + shopEntry, []Problem{
			{Line: 7, Key: "shutdown_delay", Msg: "10m0s is more than 5m0s"}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list := withoutNotServed(problemsOf(t, tc.data, nil))
			checkProblems(t, list, tc.want)
			if slices.ContainsFunc(list, func(p Problem) bool { return !p.Warning }) {
				return
			}
			cfg, err := Parse("cloakroom.yaml", []byte(tc.data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ShutdownDelay != tc.delay {
				t.Errorf("shutdown_delay %v, want %v", cfg.ShutdownDelay, tc.delay)
			}
		})
	}
}
