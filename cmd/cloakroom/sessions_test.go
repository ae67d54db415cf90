package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// --frontend reaches the admin API as the frontend parameter, and a
// listing of named frontends' sessions gets a FRONTEND column.
func TestSessionsFrontend(t *testing.T) {
	var got []string
	answer := ""
	adm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodDelete {
			w.Write([]byte(`{"revoked":1}`))
			return
		}
		w.Write([]byte(answer))
	}))
	defer adm.Close()
	t.Setenv("CLOAKROOM_ADMIN_TOKEN", "t0ken")
	for _, c := range []struct {
		name     string
		args     []string
		answer   string
		wantCall string
		wantOut  []string // substrings of stdout
		noOut    string
	}{
		{"list one frontend", []string{"list", "--sub", "alice", "--frontend", "shop"},
			`[{"handle":"s:h1","frontend":"shop","sub":"alice"}]`,
			"GET /admin/sessions?frontend=shop&sub=alice", []string{"FRONTEND", "shop", "s:h1"}, ""},
		{"list without frontends", []string{"list", "--sub", "alice"},
			`[{"handle":"s:h1","sub":"alice"}]`,
			"GET /admin/sessions?sub=alice", []string{"HANDLE", "s:h1"}, "FRONTEND"},
		{"revoke a handle in a frontend", []string{"revoke", "--id", "s:h1", "--frontend", "admin"}, "",
			"DELETE /admin/sessions/s:h1?frontend=admin", []string{"revoked 1"}, ""},
		{"revoke a subject in a frontend", []string{"revoke", "--sub", "alice", "--frontend", "admin"}, "",
			"DELETE /admin/sessions?frontend=admin&sub=alice", []string{"revoked 1"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, answer = nil, c.answer
			var stdout, stderr bytes.Buffer
			args := append(c.args, "--admin", adm.URL)
			if code := sessions(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if len(got) != 1 || got[0] != c.wantCall {
				t.Errorf("calls: got %q, want %q", got, c.wantCall)
			}
			for _, w := range c.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output %q lacks %q", stdout.String(), w)
				}
			}
			if c.noOut != "" && strings.Contains(stdout.String(), c.noOut) {
				t.Errorf("output %q has %q", stdout.String(), c.noOut)
			}
		})
	}
}
