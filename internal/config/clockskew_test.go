package config

import (
	"testing"
	"time"
)

func TestClockSkew(t *testing.T) {
	const client = "  client_secret: not-a-real-secret\n"
	tests := []struct {
		name string
		data string
		want []Problem
		skew time.Duration // when there is no problem
	}{
		{"default", minimal, nil, 60 * time.Second},
		{"zero: no leeway", edit("", client, client+"  clock_skew: 0s\n"), nil, 0},
		{"five minutes", edit("", client, client+"  clock_skew: 5m\n"), nil, 5 * time.Minute},
		{"negative", edit("", client, client+"  clock_skew: -1s\n"), []Problem{
			{Line: 6, Key: "oidc.clock_skew", Msg: "must not be negative"}}, 0},
		{"above five minutes", edit("", client, client+"  clock_skew: 301s\n"), []Problem{
			{Line: 6, Key: "oidc.clock_skew", Msg: "5m1s is more than 5m0s"}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, problemsOf(t, tc.data, nil), tc.want)
			if tc.want != nil {
				return
			}
			cfg, err := Parse("cloakroom.yaml", []byte(tc.data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OIDC.ClockSkew != tc.skew {
				t.Errorf("clock_skew %v, want %v", cfg.OIDC.ClockSkew, tc.skew)
			}
		})
	}
}
