package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestValidateMediate(t *testing.T) {
	// route puts an API route on lines 9-14 (10-15 with oidc.dpop): path,
	// upstream, token, resource, mediate.
	route := func(dpop bool, upstream, token, extra string) string {
		var oldnew []string
		if dpop {
			oldnew = []string{"  client_id: web\n", "  client_id: web\n  dpop: true\n"}
		}
		return edit(fmt.Sprintf("apis:\n  - path: /api/orders/\n    upstream: %s\n    token: %s\n    resource: https://orders.example.com\n    mediate: true\n%s", upstream, token, extra), oldnew...)
	}
	tests := []struct {
		name string
		data string
		want []Problem
	}{
		{"dpop, user, https", route(true, "https://orders.example.com/", "user", ""), nil},
		{"localhost upstream over http", route(true, "http://localhost:8081/", "user", ""), nil},
		{"127.0.0.1 upstream over http", route(true, "http://127.0.0.1:8081/", "user", ""), nil},
		{"not mediated: resource on a user route warned", strings.Replace(route(true, "https://orders.example.com/", "user", ""), "    mediate: true\n", "", 1), []Problem{
			{Line: 14, Key: "apis[0].resource", Msg: "is used only with token client, user_or_client or exchange", Warning: true}}},
		{"without dpop", route(false, "https://orders.example.com/", "user", ""), []Problem{
			{Line: 14, Key: "apis[0].mediate", Msg: "needs oidc.dpop: true"}}},
		{"exchange", route(true, "https://orders.example.com/", "exchange", ""), []Problem{
			{Line: 15, Key: "apis[0].mediate", Msg: "needs token user: the browser gets the signed-in user's own token (resource, audience and scopes narrow it), not a exchange token"}}},
		{"client", route(true, "https://orders.example.com/", "client", ""), []Problem{
			{Line: 15, Key: "apis[0].mediate", Msg: "needs token user"}}},
		{"plain http", route(true, "http://orders.internal:8080/", "user", ""), []Problem{
			{Line: 12, Key: "apis[0].upstream", Msg: "must use https with mediate"}}},
		{"own csp", route(true, "https://orders.example.com/", "user", "frontend:\n  csp: \"default-src 'self'\"\n"), []Problem{
			{Line: 15, Key: "apis[0].mediate", Msg: "add its origin to connect-src", Warning: true}}},
		{"everything wrong", route(false, "http://orders.internal:8080/", "user_or_none", ""), []Problem{
			{Line: 11, Key: "apis[0].upstream", Msg: "must use https with mediate"},
			{Line: 14, Key: "apis[0].mediate", Msg: "needs oidc.dpop: true"},
			{Line: 14, Key: "apis[0].mediate", Msg: "needs token user"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, sortedByKey(problemsOf(t, tt.data, nil)), sortedByKey(tt.want))
		})
	}
}

func TestBFFTokenPathReserved(t *testing.T) {
	got := problemsOf(t, edit("", "  client_secret: not-a-real-secret\n", "  client_secret: not-a-real-secret\n  callback_path: /bff/token\n"), nil)
	if len(got) != 1 || got[0].Key != "oidc.callback_path" {
		t.Errorf("got %v, want oidc.callback_path refused", got)
	}
}
