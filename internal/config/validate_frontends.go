package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// scope is the frontends[] entry a validator checks, merged over the top
// level (Config.frontendConfig). Its problems name the key the file gives:
// the entry's when the entry sets it, the top level's when the entry
// inherits it, else the entry's (at the line of the nearest key above).
type scope struct {
	prefix string // "frontends[1]"
	owns   func(key string) bool
	// topGiven reports whether the top level sets key.
	topGiven func(key string) bool
	// apis and composites count the shared top-level routes, which come
	// first in the merged lists.
	apis, composites int
}

// scopeOf is the scope of frontends[i].
func (c *Config) scopeOf(i int) *scope {
	return &scope{
		prefix: fmt.Sprintf("frontends[%d]", i),
		owns:   c.entryOwns(i), topGiven: c.topGiven,
		apis: len(c.APIs), composites: len(c.Composites),
	}
}

// at maps a key of the Config checked to the key of the file. Without a
// scope, and for a key already of the file, it is the key itself.
func (v *validator) at(key string) string {
	s := v.scope
	if s == nil || strings.HasPrefix(key, "frontends[") {
		return key
	}
	if key == "public_url" {
		return s.prefix + ".public_url"
	}
	for _, l := range []struct {
		name   string
		shared int
	}{{"apis", s.apis}, {"composites", s.composites}} {
		rest, ok := strings.CutPrefix(key, l.name+"[")
		if !ok {
			continue
		}
		n, tail, ok := strings.Cut(rest, "]")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < l.shared {
			return key
		}
		return fmt.Sprintf("%s.%s[%d]%s", s.prefix, l.name, i-l.shared, tail)
	}
	if slices.Contains(topLevelOnlyKeys, key) || !s.owns(key) && s.topGiven(key) {
		return key
	}
	return s.prefix + "." + key
}

// inherited reports whether key is the top level's in the frontend
// checked: a shared route or a value the entry does not set.
func (v *validator) inherited(key string) bool {
	return v.scope != nil && v.at(key) == key
}

// line is the line of a key of the file. A key of an entry that the file
// does not hold (a value inherited or left to its default) gets the line
// of the nearest key above it, at worst the entry's own.
func (v *validator) line(key string) int {
	if l := v.c.line(key); l > 0 || !strings.HasPrefix(key, "frontends[") {
		return l
	}
	for k := key; ; {
		i := strings.LastIndexAny(k, ".[")
		if i <= 0 {
			return 0
		}
		k = k[:i]
		if l := v.c.line(k); l > 0 {
			return l
		}
	}
}

// fileLine is the line of the key the file holds for key, or 0.
func (v *validator) fileLine(key string) int {
	return v.c.line(v.at(key))
}

// hasFrontends reports whether the file has frontends:, even one that did
// not decode.
func (c *Config) hasFrontends() bool {
	return c.Frontends != nil || c.meta != nil && c.meta.given["frontends"]
}

// validateFrontends is Validate for a file with frontends:: the keys of
// the whole gateway once, each entry as merged, then what frontends on
// one host must not share. A top-level value is checked in every frontend
// that inherits it and reported once.
func (c *Config) validateFrontends() []Problem {
	v := &validator{c: c}
	v.addresses()
	v.shutdownDelay()
	v.listenTLS()
	v.trustedProxies()
	v.store()
	v.keys()
	if c.PublicURL != "" {
		v.errorf("public_url", "with frontends, each frontend has its own public_url: move it into the entries of frontends")
	}
	if len(c.Frontends) == 0 {
		v.errorf("frontends", "lists no frontend: add one with name and public_url, or remove frontends to serve the top level as the one frontend")
	}
	fvs := make([]*validator, len(c.Frontends))
	for i := range c.Frontends {
		v.entry(i)
		fv := &validator{c: c.frontendConfig(i), scope: c.scopeOf(i)}
		fv.publicURL()
		fv.frontendValues()
		fvs[i] = fv
	}
	v.sharedHosts(fvs)
	for _, fv := range fvs {
		v.list = append(v.list, fv.list...)
	}
	seen := map[Problem]bool{}
	list := v.list[:0]
	for _, p := range v.list {
		if !seen[p] {
			seen[p] = true
			list = append(list, p)
		}
	}
	sortProblems(list)
	if len(list) == 0 {
		return nil
	}
	return list
}

var frontendName = regexp.MustCompile(`^[a-z0-9-]+$`)

// entry checks what frontends[i] has of its own: name, path, and the
// session keys every frontend shares.
func (v *validator) entry(i int) {
	e := v.c.Frontends[i]
	p := fmt.Sprintf("frontends[%d]", i)
	switch j := slices.IndexFunc(v.c.Frontends[:i], func(o FrontendSpec) bool { return o.Name == e.Name }); {
	case e.Name == "":
		v.errorf(p+".name", "required: a name of lowercase letters, digits and -, e.g. shop")
	case !frontendName.MatchString(e.Name):
		v.errorf(p+".name", "%s is not a name of lowercase letters, digits and -: write e.g. shop or partner-portal", v.quote(p+".name", e.Name))
	case j >= 0:
		v.errorf(p+".name", "repeats frontends[%d].name: each frontend needs its own name", j)
	}
	v.basePath(p+".path", e.Path)
	for _, k := range topLevelOnlyKeys {
		given := v.c.meta != nil && v.c.meta.given[p+"."+k]
		if v.c.meta == nil {
			given = k == "session.store" && e.Session.Store != "" || k == "session.keys" && e.Session.Keys != nil
		}
		if given {
			v.errorf(p+"."+k, "is top-level only: every frontend shares the session store and its keys; move it to the top-level session")
		}
	}
}

// basePath checks a frontend's path; empty is its default, "/".
func (v *validator) basePath(key, s string) bool {
	switch {
	case s == "" || s == "/":
		return true
	case !strings.HasPrefix(s, "/") || !strings.HasSuffix(s, "/"):
		v.errorf(key, "must start and end with /: write e.g. /admin/")
	case strings.ContainsAny(s, `?#%\{}`) || strings.ContainsFunc(s, isSpaceOrControl):
		v.errorf(key, "must be a plain path without query, fragment, escapes, parameters, backslashes, spaces or control characters")
	case strings.Contains(s, "//") || hasDotSegment(s):
		v.errorf(key, "must be a clean path without //, . or .. segments")
	case strings.HasPrefix(s, "/bff/"):
		v.errorf(key, "must not be under /bff/, where a frontend at / answers the gateway's own endpoints: use e.g. /admin/")
	default:
		return true
	}
	return false
}

// hostOf returns the matching host (host:port, the port made explicit)
// and the cookie host (the host name alone: browsers keep cookies by host,
// whatever the port and scheme, RFC 6265 §8.5) of a valid public_url.
func hostOf(publicURL string) (match, cookie string, ok bool) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", "", false
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return host + ":" + port, host, true
}

// label names frontends[i] in a message.
func (c *Config) label(i int) string {
	if n := c.Frontends[i].Name; frontendName.MatchString(n) {
		return fmt.Sprintf("frontends[%d] (%s)", i, n)
	}
	return fmt.Sprintf("frontends[%d]", i)
}

// sharedHosts checks what frontends on one host must not share: a path
// (requests would match either), a session cookie name (the browser sends
// both frontends' cookies), and routes (one under another frontend's
// longer path is answered by that frontend). It also refuses a __Host-
// cookie where the path is not "/". Problems go to the entries'
// validators, fvs, so that their keys are the file's.
func (v *validator) sharedHosts(fvs []*validator) {
	c := v.c
	// A frontend whose public_url or path is not valid is left out of
	// what needs them; entry and publicURL report those.
	type placed struct {
		match, cookie, path string
		hostOK, pathOK      bool
	}
	at := make([]placed, len(c.Frontends))
	for i, e := range c.Frontends {
		match, cookie, ok := hostOf(e.PublicURL)
		path := frontendPath(e.Path)
		at[i] = placed{match, cookie, path, ok, v.quietPath(path)}
	}
	for i, e := range c.Frontends {
		fv, p := fvs[i], fmt.Sprintf("frontends[%d]", i)
		name := fv.c.Session.CookieName
		own := fv.scope.owns("session.cookie_name")
		if strings.HasPrefix(name, "__Host-") && at[i].path != "/" && at[i].pathOK {
			what := "is a __Host- name"
			if !own {
				what = fmt.Sprintf("inherits session.cookie_name %s, a __Host- name", fv.quote("session.cookie_name", name))
			}
			v.errorf(p+".session.cookie_name", "%s, which must have Path=/, and this frontend's path is %q: use a __Secure- name, e.g. %s%s", what, at[i].path, pathCookiePrefix, e.Name)
		}
		if !at[i].hostOK {
			continue
		}
		for j := range i {
			if !at[j].hostOK {
				continue
			}
			if at[j].match == at[i].match && at[j].path == at[i].path && at[i].pathOK {
				v.errorf(p+".path", "%q is also the path of %s on host %s: requests would match either; give each frontend on one host its own path", at[i].path, c.label(j), at[i].match)
			}
			if at[j].cookie == at[i].cookie && fvs[j].c.Session.CookieName == name {
				whose := "this frontend's session cookie name"
				if !own && fv.scope.topGiven("session.cookie_name") {
					whose += " inherited from the top level"
				}
				v.errorf(p+".session.cookie_name", "%s, %s, is also that of %s on host %s, where the browser sends both frontends' cookies (it keeps cookies by host, not by port): set a session.cookie_name of its own", fv.quote("session.cookie_name", name), whose, c.label(j), at[i].cookie)
			}
		}
		if !at[i].pathOK {
			continue
		}
		for _, r := range fv.routes(at[i].path) {
			for j := range c.Frontends {
				if j == i || !at[j].hostOK || !at[j].pathOK || at[j].match != at[i].match || len(at[j].path) <= len(at[i].path) || !strings.HasPrefix(r.abs, at[j].path) {
					continue
				}
				fv.errorf(r.key, "is served by %s at %s, under the path %s of %s on the same host, which answers it instead: move it into that frontend or choose another path", c.label(i), r.abs, at[j].path, c.label(j))
			}
		}
	}
}

// quietPath reports whether a frontend path is valid, saying nothing:
// entry reports it.
func (v *validator) quietPath(s string) bool {
	q := &validator{c: v.c}
	return q.basePath("", s)
}

// route is a path a frontend answers, by its key in the checked Config.
type route struct{ key, abs string }

// routes are the paths of the checked Config's API routes, composites and
// callback, made absolute under base.
func (v *validator) routes(base string) []route {
	var out []route
	for i, a := range v.c.APIs {
		if strings.HasPrefix(a.Path, "/") {
			out = append(out, route{fmt.Sprintf("apis[%d].path", i), underPath(base, a.Path)})
		}
	}
	for i, comp := range v.c.Composites {
		if strings.HasPrefix(comp.Path, "/") {
			out = append(out, route{fmt.Sprintf("composites[%d].path", i), underPath(base, comp.Path)})
		}
	}
	if p := v.c.OIDC.CallbackPath; strings.HasPrefix(p, "/") {
		out = append(out, route{"oidc.callback_path", underPath(base, p)})
	}
	return out
}
