package demo

import (
	"bytes"
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestSPAFiles(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := fs.ReadFile(SPA(), name)
		if err != nil {
			t.Fatalf("SPA() lacks %s: %v", name, err)
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
}

// The admin console has its own page and script, and the shop's style.
func TestAdminSPAFiles(t *testing.T) {
	tests := []struct {
		name   string
		shared bool // the shop's file, byte for byte
	}{
		{"index.html", false},
		{"app.js", false},
		{"admin.css", false},
		{"style.css", true},
		{"favicon.svg", true},
	}
	for _, tt := range tests {
		got, err := fs.ReadFile(AdminSPA(), tt.name)
		if err != nil {
			t.Fatalf("AdminSPA() lacks %s: %v", tt.name, err)
		}
		shop, _ := fs.ReadFile(SPA(), tt.name)
		if len(got) == 0 || bytes.Equal(got, shop) != tt.shared {
			t.Errorf("%s: %d bytes, the shop's: %v; want shared %v", tt.name, len(got), bytes.Equal(got, shop), tt.shared)
		}
	}
	for _, name := range []string{"../spa/app.js", "/app.js", "admin/app.js", "spa/app.js", "missing.js"} {
		if f, err := AdminSPA().Open(name); err == nil {
			f.Close()
			t.Errorf("AdminSPA().Open(%q): got a file, want an error", name)
		}
	}
}

var (
	scriptTag  = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	styleTag   = regexp.MustCompile(`(?i)<style\b`)
	inlineAttr = regexp.MustCompile(`(?i)\s(on[a-z]+|style)\s*=`)
	jsURL      = regexp.MustCompile(`(?i)javascript:`)
	nonceAttr  = regexp.MustCompile(`(?i)\snonce\s*=`)
	linkURL    = regexp.MustCompile(`(?i)\s(?:src|href)="([^"]*)"`)
)

// spas are the demo's two apps: where they are served, and what their
// pages must hold.
var spas = []struct {
	name   string
	fsys   fs.FS
	base   string
	title  string
	ids    []string
	script string
}{
	{"shop", SPA(), "/", "Cloakroom demo", []string{"status", "login", "logout", "claims", "call-api", "api-result", "admin-link"}, "/app.js"},
	{"admin", AdminSPA(), "/admin/", "Cloakroom demo: admin console", []string{"status", "login", "logout", "claims", "call-api", "api-result", "shop-link"}, "/admin/app.js"},
}

// The pages must run under a strict CSP: no inline script, style or
// handler. The admin console's files are fetched under its base path.
func TestSPAIndexHasNoInlineCode(t *testing.T) {
	for _, app := range spas {
		t.Run(app.name, func(t *testing.T) {
			b, err := fs.ReadFile(app.fsys, "index.html")
			if err != nil {
				t.Fatal(err)
			}
			html := string(b)

			scripts := scriptTag.FindAllStringSubmatch(html, -1)
			if len(scripts) == 0 {
				t.Fatal("index.html has no <script> tag")
			}
			for _, m := range scripts {
				if body := strings.TrimSpace(m[2]); body != "" {
					t.Errorf("inline script body %q", body)
				}
				if !strings.Contains(m[1], `src="`+app.script+`"`) {
					t.Errorf("script tag %q does not load %s", m[0], app.script)
				}
				if nonceAttr.MatchString(m[1]) {
					t.Errorf("script tag %q has a nonce; the gateway adds it", m[0])
				}
			}
			if styleTag.MatchString(html) {
				t.Error("index.html has a <style> element")
			}
			if m := inlineAttr.FindString(html); m != "" {
				t.Errorf("index.html has an inline attribute %q", m)
			}
			if jsURL.MatchString(html) {
				t.Error("index.html has a javascript: URL")
			}
			if !strings.Contains(html, "<title>"+app.title+"</title>") {
				t.Errorf("index.html is not titled %q", app.title)
			}
			for _, id := range app.ids {
				if !strings.Contains(html, `id="`+id+`"`) {
					t.Errorf("index.html lacks #%s", id)
				}
			}
			if !strings.Contains(html, `id="status" data-state="loading"`) {
				t.Error(`#status does not start with data-state="loading"`)
			}
			for _, m := range linkURL.FindAllStringSubmatch(html, -1) {
				if u := m[1]; app.name == "admin" && !strings.HasPrefix(u, app.base) && u != "/" {
					t.Errorf("admin page loads %q, outside its base path", u)
				}
			}
		})
	}
}

// The scripts must not keep anything where scripts could read it later,
// and the admin console calls only paths of its own frontend.
func TestSPAScriptStoresNothing(t *testing.T) {
	wants := map[string][]string{
		"shop":  {"'/bff/user'", "'/bff/login?returnUrl=/'", "'bff:logout_url'", "'/api/demo/whoami'", "'X-CSRF': '1'"},
		"admin": {"'/admin/bff/user'", "'/admin/bff/login?returnUrl=/admin/'", "'bff:logout_url'", "'/admin/api/overview'", "'X-CSRF': '1'"},
	}
	quoted := regexp.MustCompile(`'(/[^']*)'`)
	for _, app := range spas {
		t.Run(app.name, func(t *testing.T) {
			b, err := fs.ReadFile(app.fsys, "app.js")
			if err != nil {
				t.Fatal(err)
			}
			js := string(b)
			for _, bad := range []string{"localStorage", "sessionStorage", "document.cookie", "innerHTML", "eval("} {
				if strings.Contains(js, bad) {
					t.Errorf("app.js uses %s", bad)
				}
			}
			for _, want := range wants[app.name] {
				if !strings.Contains(js, want) {
					t.Errorf("app.js lacks %s", want)
				}
			}
			if app.name != "admin" {
				return
			}
			for _, m := range quoted.FindAllStringSubmatch(js, -1) {
				if !strings.HasPrefix(m[1], app.base) {
					t.Errorf("admin app.js names %q, outside /admin/", m[1])
				}
			}
		})
	}
}
