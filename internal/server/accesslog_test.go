package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The hand-encoded access-log line must say exactly what slog's JSON
// handler says for the same entry, whatever an attacker puts in the path.
func TestAccessLineMatchesSlog(t *testing.T) {
	paths := []string{
		"/api/orders/1",
		`/api/"quoted"\back`,
		"/api/<script>&amp;",
		"/api/new\nline\r\ttab\x00nul\x1f",
		"/api/ünïcödé/日本",
		"/api/bad\xff\xfeutf8",
		"/api/sep\u2028\u2029",
		"",
	}
	for _, p := range paths {
		for _, v := range []struct{ frontend, session string }{{"", ""}, {"", "s:AbCdEf_-1234"}, {"shop", ""}, {"admin-2", "s:AbCdEf_-1234"}} {
			e := accessEntry{at: time.Now(), requestID: "0123456789abcdef", frontend: v.frontend, route: "/api/", method: "GET", path: p, status: 200, duration: 1234567 * time.Nanosecond, session: v.session}

			var viaSlog bytes.Buffer
			accessLog{log: slog.New(slog.NewJSONHandler(&viaSlog, nil))}.write(context.Background(), &e)
			var direct bytes.Buffer
			accessLog{w: &direct}.write(context.Background(), &e)

			if n := strings.Count(direct.String(), "\n"); n != 1 || !strings.HasSuffix(direct.String(), "\n") {
				t.Fatalf("path %q: not one line: %q", p, direct.String())
			}
			want, got := decode(t, viaSlog.Bytes()), decode(t, direct.Bytes())
			if f, ok := got["frontend"]; ok != (v.frontend != "") || ok && f != v.frontend {
				t.Errorf("frontend %q: got %v in %s", v.frontend, f, direct.String())
			}
			for _, m := range []map[string]any{want, got} {
				if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
					t.Fatalf("path %q: time: %v", p, err)
				}
				delete(m, "time")
			}
			a, _ := json.Marshal(want)
			b, _ := json.Marshal(got)
			if !bytes.Equal(a, b) {
				t.Errorf("path %q:\n slog:   %s\n direct: %s", p, a, b)
			}
			for _, c := range []string{"<", ">", "&", "\u2028", "\u2029", "\xff"} {
				if strings.Contains(direct.String(), c) {
					t.Errorf("path %q: %q left unescaped in %s", p, c, direct.String())
				}
			}
		}
	}
}

func decode(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	return m
}

func BenchmarkAccessLine(b *testing.B) {
	e := accessEntry{at: time.Now(), requestID: "0123456789abcdef", route: "/api/", method: "GET", path: "/api/orders/recent", status: 200, duration: 1234567, session: "s:AbCdEf_-1234"}
	b.Run("slog", func(b *testing.B) {
		a := accessLog{log: slog.New(slog.NewJSONHandler(discard{}, nil))}
		b.ReportAllocs()
		for b.Loop() {
			a.write(context.Background(), &e)
		}
	})
	b.Run("direct", func(b *testing.B) {
		a := accessLog{w: discard{}}
		b.ReportAllocs()
		for b.Loop() {
			a.write(context.Background(), &e)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
