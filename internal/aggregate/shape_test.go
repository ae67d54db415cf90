package aggregate_test

import (
	"net/http"
	"testing"

	"github.com/cloakroom/cloakroom/internal/aggregate"
)

const (
	profileJSON = `{"name":"Alice","email":"alice@example.com","id":12345678901234567890,
		"address":{"city":"Paris","zip":"75001"}}`
	ordersJSON = `{"count":2,"items":[
		{"id":1,"total":9.5,"sku":"A","lines":[{"q":1,"p":2},{"q":3,"p":4}]},
		{"id":2,"total":3,"sku":"B","lines":[]},
		5]}`
	listJSON = `[{"id":1,"x":2},{"id":3,"x":4}]`
)

func shapedComposite(t *testing.T, def string) http.Handler {
	t.Helper()
	profile := newUpstream(t, jsonBody(profileJSON))
	orders := newUpstream(t, jsonBody(ordersJSON))
	list := newUpstream(t, jsonBody(listJSON))
	broken := newUpstream(t, http.NotFound)
	return mustNew(t, aggregate.Composite{
		Parts: []aggregate.Part{
			{Name: "profile", Upstream: profile.base, Path: "me", Required: true},
			{Name: "orders", Upstream: orders.base, Path: "recent"},
			{Name: "list", Upstream: list.base, Path: "list"},
			{Name: "broken", Upstream: broken.base, Path: "x"},
		},
		Profiles: map[string]aggregate.Profile{
			"mobile": {Allow: []string{"profile.name", "orders.items.id", "orders.items.total", "list.id", "broken"}},
			"web":    {Deny: []string{"profile.email", "profile.address", "orders.items.sku", "orders.items.lines.p", "list", "broken"}},
			"nothing-inside": {Allow: []string{"profile", "orders.count"},
				Deny: []string{"profile.address.zip"},
				Map: map[string]string{
					"profile.name": "name",
					"profile":      "user",
					"orders.count": "stats.orderCount",
				}},
			"precise": {Allow: []string{"profile.id"}},
		},
		DefaultProfile: def,
	}, aggregate.Options{})
}

func TestProfiles(t *testing.T) {
	const brokenMeta = `"_meta":{"errors":{"broken":{"status":404,"error":"upstream answered 404"}}}`
	h := shapedComposite(t, "")
	tests := []struct {
		name   string
		target string
		header string
		want   string
	}{
		{name: "allow through arrays", target: "?profile=mobile", want: `{
			"profile":{"name":"Alice"},
			"orders":{"items":[{"id":1,"total":9.5},{"id":2,"total":3}]},
			"list":[{"id":1},{"id":3}],
			"broken":null,` + brokenMeta + `}`},
		{name: "deny through arrays", target: "?profile=web", want: `{
			"profile":{"name":"Alice","id":12345678901234567890},
			"orders":{"count":2,"items":[
				{"id":1,"total":9.5,"lines":[{"q":1},{"q":3}]},
				{"id":2,"total":3,"lines":[]},
				5]},` + brokenMeta + `}`},
		{name: "map", target: "?profile=nothing-inside", want: `{
			"name":"Alice",
			"user":{"email":"alice@example.com","id":12345678901234567890,"address":{"city":"Paris"}},
			"orders":{},
			"stats":{"orderCount":2},` + brokenMeta + `}`},
		{name: "header chooses", target: "", header: "mobile", want: `{
			"profile":{"name":"Alice"},
			"orders":{"items":[{"id":1,"total":9.5},{"id":2,"total":3}]},
			"list":[{"id":1},{"id":3}],
			"broken":null,` + brokenMeta + `}`},
		{name: "query wins over header", target: "?profile=precise", header: "mobile", want: `{
			"profile":{"id":12345678901234567890},` + brokenMeta + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.header != "" {
				hdr.Set(aggregate.HeaderClientProfile, tt.header)
			}
			w := get(t, h, dashboard, "/bff/dashboard"+tt.target, hdr)
			wantOK(t, w)
			jsonEqual(t, w.Body.Bytes(), tt.want)
		})
	}
}

func TestShapedKeepsNumbers(t *testing.T) {
	h := shapedComposite(t, "precise")
	w := get(t, h, dashboard, "/bff/dashboard", nil)
	wantOK(t, w)
	const want = `{"_meta":{"errors":{"broken":{"status":404,"error":"upstream answered 404"}}},"profile":{"id":12345678901234567890}}`
	if got := w.Body.String(); got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func TestUnknownProfile(t *testing.T) {
	h := shapedComposite(t, "mobile")
	wantProblem(t, get(t, h, dashboard, "/bff/dashboard?profile=tv", nil), http.StatusBadRequest, `unknown profile "tv"`)
	wantProblem(t, get(t, h, dashboard, "/bff/dashboard", http.Header{aggregate.HeaderClientProfile: {"tv"}}), http.StatusBadRequest, `unknown profile "tv"`)
}
