package demo

import (
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

var (
	scriptTag   = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	styleTag    = regexp.MustCompile(`(?i)<style\b`)
	inlineAttr  = regexp.MustCompile(`(?i)\s(on[a-z]+|style)\s*=`)
	jsURL       = regexp.MustCompile(`(?i)javascript:`)
	nonceAttr   = regexp.MustCompile(`(?i)\snonce\s*=`)
	requiredIDs = []string{"status", "login", "logout", "claims", "call-api", "api-result"}
)

// The page must run under a strict CSP: no inline script, style or handler.
func TestSPAIndexHasNoInlineCode(t *testing.T) {
	b, err := fs.ReadFile(SPA(), "index.html")
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
		if !strings.Contains(m[1], `src="/app.js"`) {
			t.Errorf("script tag %q does not load /app.js", m[0])
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
	if !strings.Contains(html, "<title>Cloakroom demo</title>") {
		t.Error("index.html is not titled \"Cloakroom demo\"")
	}
	for _, id := range requiredIDs {
		if !strings.Contains(html, `id="`+id+`"`) {
			t.Errorf("index.html lacks #%s", id)
		}
	}
	if !strings.Contains(html, `id="status" data-state="loading"`) {
		t.Error(`#status does not start with data-state="loading"`)
	}
}

// app.js must not keep anything where scripts could read it later.
func TestSPAScriptStoresNothing(t *testing.T) {
	b, err := fs.ReadFile(SPA(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, bad := range []string{"localStorage", "sessionStorage", "document.cookie", "innerHTML", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	for _, want := range []string{"'/bff/user'", "'/bff/login?returnUrl=/'", "'bff:logout_url'", "'/api/demo/whoami'", "'X-CSRF': '1'"} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
}
