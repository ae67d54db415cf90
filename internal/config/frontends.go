package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Several frontends on one gateway (SPEC "Several frontends on one
// gateway"): the file's frontends: list, each entry laid over the top
// level, and Apps, the effective frontends the server is built from.

// FrontendSpec is one entry of frontends: as the file gives it. Its
// sections hold only what the entry sets; Apps lays them over the top
// level's (see overlay). Name and PublicURL are required; Path defaults
// to "/".
//
// The keys that apply to the whole gateway (listen, admin_listen,
// admin_token, trusted_proxies, tls, ..., session.store and session.keys)
// are refused in an entry.
type FrontendSpec struct {
	// Name is [a-z0-9-]+, unique among the entries: the frontend's metrics
	// label, its tag on sessions, and part of its default cookie name.
	Name string `yaml:"name"`
	// PublicURL is the frontend's origin, as the top-level public_url is
	// without frontends: (scheme://host[:port], plain http only for
	// localhost). Several frontends may share one origin with distinct
	// paths.
	PublicURL string `yaml:"public_url"`
	// Path is the frontend's base path, starting and ending with "/":
	// its /bff/ endpoints, routes and callback are under it. Default "/".
	Path string `yaml:"path"`

	// The sections below are merged over the top level's: a key set here
	// wins, a key left out (or null) is the top level's. Structs and maps
	// merge key by key; lists and single values are replaced whole. The
	// keys of a client's credential (client_secret, client_secret_file,
	// private_key_file, client_certificate_file,
	// client_certificate_key_file) go together, and so do frontend.dir and
	// frontend.dev_server: an entry that sets one of them inherits none.
	OIDC      OIDC      `yaml:"oidc"`
	Session   Session   `yaml:"session"`
	Frontend  Frontend  `yaml:"frontend"`
	CORS      CORS      `yaml:"cors"`
	CSRF      CSRF      `yaml:"csrf"`
	RateLimit RateLimit `yaml:"rate_limit"`

	// APIs and Composites are the frontend's own routes, after the shared
	// top-level ones. Their paths, like oidc.callback_path and
	// oidc.post_logout_path, are relative to Path.
	APIs       []API       `yaml:"apis"`
	Composites []Composite `yaml:"composites"`
}

// App is one effective frontend: complete, validated with its Config, and
// self-contained. Paths are absolute: those of the file joined to Path.
type App struct {
	// Name is the entry's name; "" for the one frontend of a file without
	// frontends:, whose sessions carry no frontend tag, as before.
	Name string
	// PublicURL is the frontend's origin; Path its base path ("/" or e.g.
	// "/admin/").
	PublicURL string
	Path      string
	// OIDC is merged; CallbackPath and PostLogoutPath are absolute.
	OIDC OIDC
	// Session is merged, with the top level's Store and Keys, and
	// CookieName resolved (see Config.Apps).
	Session Session
	// CookiePath is the session cookie's Path attribute: the frontend's
	// Path.
	CookiePath string
	Frontend   Frontend
	CORS       CORS
	CSRF       CSRF
	RateLimit  RateLimit
	// APIs and Composites are the shared top-level routes, then the
	// frontend's own, with absolute paths (a part's API too).
	APIs       []API
	Composites []Composite
}

// Default session cookie names. Without frontends: the one frontend's
// cookie is DefaultCookieName. In frontends[], an entry at path "/" gets
// "__Host-Http-cloakroom-<name>" and any other "__Secure-Http-cloakroom-
// <name>" with Path=<path>: a __Host- cookie must have Path=/ (RFC 6265bis
// §4.1.3.2), and __Secure- keeps the Secure requirement.
const (
	DefaultCookieName = "__Host-Http-cloakroom"
	hostCookiePrefix  = "__Host-Http-cloakroom-"
	pathCookiePrefix  = "__Secure-Http-cloakroom-"
)

// Apps returns the effective frontends: for a file without frontends:,
// exactly one, the top-level values with Name "" and Path "/"; else one a
// frontends[] entry, in the file's order, each laid over the top level.
// An entry whose session.cookie_name is set, or inherits one set at the
// top level, keeps it; otherwise it gets the default of its path (see
// DefaultCookieName). Call it on a Config that Validate accepts.
func (c *Config) Apps() []App {
	if c.Frontends == nil {
		return []App{{
			PublicURL:  c.PublicURL,
			Path:       "/",
			OIDC:       c.OIDC,
			Session:    c.Session,
			CookiePath: "/",
			Frontend:   c.Frontend,
			CORS:       c.CORS,
			CSRF:       c.CSRF,
			RateLimit:  c.RateLimit,
			APIs:       c.APIs,
			Composites: c.Composites,
		}}
	}
	apps := make([]App, len(c.Frontends))
	for i := range c.Frontends {
		apps[i] = c.frontendConfig(i).app(c.Frontends[i].Name, frontendPath(c.Frontends[i].Path))
	}
	return apps
}

// AppKey returns the key of the file that gives key (of the merged
// sections, e.g. "oidc.private_key_file", or "apis[2].upstream") in
// Apps()[i]: the entry's ("frontends[1].oidc.private_key_file") when the
// entry sets it, the top level's when the entry inherits it (a shared
// route is the top level's), else the entry's. Without frontends: it is
// key. Its line is Line of it.
func (c *Config) AppKey(i int, key string) string {
	if c.Frontends == nil || i < 0 || i >= len(c.Frontends) {
		return key
	}
	v := &validator{c: c, scope: c.scopeOf(i)}
	return v.at(key)
}

// frontendPath is an entry's path with its default.
func frontendPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// underPath joins a path of the file (starting with "/") to a frontend's
// base path (ending with "/").
func underPath(base, p string) string {
	return base + strings.TrimPrefix(p, "/")
}

// app is the effective frontend of the merged Config m (see
// frontendConfig), its paths made absolute.
func (m *Config) app(name, path string) App {
	a := App{
		Name:       name,
		PublicURL:  m.PublicURL,
		Path:       path,
		OIDC:       m.OIDC,
		Session:    m.Session,
		CookiePath: path,
		Frontend:   m.Frontend,
		CORS:       m.CORS,
		CSRF:       m.CSRF,
		RateLimit:  m.RateLimit,
	}
	a.OIDC.CallbackPath = underPath(path, m.OIDC.CallbackPath)
	a.OIDC.PostLogoutPath = underPath(path, m.OIDC.PostLogoutPath)
	for _, api := range m.APIs {
		api.Path = underPath(path, api.Path)
		a.APIs = append(a.APIs, api)
	}
	for _, comp := range m.Composites {
		comp.Path = underPath(path, comp.Path)
		parts := make(map[string]Part, len(comp.Parts))
		for name, pt := range comp.Parts {
			if pt.API != "" {
				pt.API = underPath(path, pt.API)
			}
			parts[name] = pt
		}
		comp.Parts = parts
		a.Composites = append(a.Composites, comp)
	}
	return a
}

// frontendConfig returns frontends[i] merged over the top level as a
// Config of its own, paths still relative to the entry's path: what
// Validate checks for the entry and Apps makes absolute. It shares c's
// lines, with the entry's own secret-file flags.
func (c *Config) frontendConfig(i int) *Config {
	e := &c.Frontends[i]
	owns := c.entryOwns(i)
	m := &Config{
		Listen:         c.Listen,
		PublicURL:      e.PublicURL,
		AdminListen:    c.AdminListen,
		AdminToken:     c.AdminToken,
		AdminTokenFile: c.AdminTokenFile,
		LogLevel:       c.LogLevel,
		TrustedProxies: c.TrustedProxies,
		APIs:           append(slices.Clip(slices.Clone(c.APIs)), e.APIs...),
		Composites:     append(slices.Clip(slices.Clone(c.Composites)), e.Composites...),
	}
	overlaySection(&m.OIDC, c.OIDC, e.OIDC, "oidc", owns)
	overlaySection(&m.Session, c.Session, e.Session, "session", owns)
	overlaySection(&m.Frontend, c.Frontend, e.Frontend, "frontend", owns)
	overlaySection(&m.CORS, c.CORS, e.CORS, "cors", owns)
	overlaySection(&m.CSRF, c.CSRF, e.CSRF, "csrf", owns)
	overlaySection(&m.RateLimit, c.RateLimit, e.RateLimit, "rate_limit", owns)
	m.Session.Store, m.Session.Keys = c.Session.Store, c.Session.Keys
	m.Session.CookieName = c.entryCookieName(i, owns)
	if c.meta != nil {
		mm := *c.meta
		prefix := entryKey(i, "oidc")
		if owns("oidc.client_secret") {
			mm.secretFromFile = c.meta.entrySecretFromFile[prefix]
		}
		if owns("oidc.service_client.client_secret") {
			mm.serviceSecretFromFile = c.meta.entrySecretFromFile[prefix+".service_client"]
		}
		mm.warnings = nil
		m.meta = &mm
	}
	return m
}

// entryCookieName is the session cookie name of frontends[i]: the entry's,
// or one set at the top level, or the default of its path.
func (c *Config) entryCookieName(i int, owns func(string) bool) string {
	e := c.Frontends[i]
	switch {
	case owns("session.cookie_name"):
		return e.Session.CookieName
	case c.topGiven("session.cookie_name"):
		return c.Session.CookieName
	case frontendPath(e.Path) == "/":
		return hostCookiePrefix + e.Name
	}
	return pathCookiePrefix + e.Name
}

// topGiven reports whether the top level sets key: the file gives it
// (its value not null). A Config made in code sets session.cookie_name
// when it differs from DefaultCookieName, and nothing else this asks
// about.
func (c *Config) topGiven(key string) bool {
	if c.meta != nil {
		return c.meta.given[key]
	}
	return key == "session.cookie_name" && c.Session.CookieName != "" && c.Session.CookieName != DefaultCookieName
}

// entryKey is the file's key of key (relative, e.g. "oidc.client_id") in
// frontends[i].
func entryKey(i int, key string) string {
	return fmt.Sprintf("frontends[%d].%s", i, key)
}

// credentialUnits are keys that go together: an entry that sets one of a
// unit inherits none of it, so that a client's credential is never half
// its own and half the top level's, and a frontend never gets both a dir
// and a dev server.
var credentialUnits = [][]string{
	{"oidc.client_secret", "oidc.client_secret_file", "oidc.private_key_file", "oidc.client_certificate_file", "oidc.client_certificate_key_file"},
	{"oidc.service_client.client_secret", "oidc.service_client.client_secret_file", "oidc.service_client.private_key_file"},
	{"frontend.dir", "frontend.dev_server"},
}

// topLevelOnlyKeys of the sections an entry may set: every frontend shares
// the session store and its keys.
var topLevelOnlyKeys = []string{"session.store", "session.keys"}

// entryOwns returns whether frontends[i] sets a key of its merged
// sections (relative, e.g. "oidc.client_id", "cors.allowed_origins[0]"),
// itself or through its unit: in a file, a key given a value other than
// null; in a Config made in code, a value other than the zero value (a
// non-nil empty list counts: it clears the top level's).
func (c *Config) entryOwns(i int) func(key string) bool {
	var given func(string) bool
	if c.meta != nil {
		prefix := fmt.Sprintf("frontends[%d].", i)
		given = func(key string) bool { return c.meta.given[prefix+key] }
	} else {
		set := map[string]bool{}
		e := reflect.ValueOf(&c.Frontends[i]).Elem()
		for _, s := range mergedSections {
			nonZero(e.FieldByName(s.field), s.key, set)
		}
		given = func(key string) bool { return set[key] }
	}
	return func(key string) bool {
		if slices.Contains(topLevelOnlyKeys, key) {
			return false
		}
		if given(key) {
			return true
		}
		for _, unit := range credentialUnits {
			if slices.Contains(unit, key) && slices.ContainsFunc(unit, given) {
				return true
			}
		}
		return false
	}
}

// mergedSections are the fields of FrontendSpec, and their keys, that
// overlay merges over the top level's.
var mergedSections = []struct{ field, key string }{
	{"OIDC", "oidc"}, {"Session", "session"}, {"Frontend", "frontend"},
	{"CORS", "cors"}, {"CSRF", "csrf"}, {"RateLimit", "rate_limit"},
}

// overlaySection sets *dst to top with the keys of entry that owns
// reports laid over it.
func overlaySection[T any](dst *T, top, entry T, key string, owns func(string) bool) {
	*dst = top
	overlay(reflect.ValueOf(dst).Elem(), reflect.ValueOf(entry), key, owns)
}

// overlay lays the keys of src that owns reports over dst, a copy of the
// top level's value at key: structs and maps key by key, anything else
// whole. Pointers and maps are copied, never shared with the top level.
func overlay(dst, src reflect.Value, key string, owns func(string) bool) {
	switch {
	case dst.Type() == durationType:
		if owns(key) {
			dst.Set(src)
		}
	case dst.Kind() == reflect.Struct:
		t := dst.Type()
		for i := range t.NumField() {
			if name := yamlName(t.Field(i)); name != "" {
				overlay(dst.Field(i), src.Field(i), join(key, name), owns)
			}
		}
	case dst.Kind() == reflect.Pointer:
		if src.IsNil() && dst.IsNil() {
			return
		}
		p := reflect.New(dst.Type().Elem())
		if !dst.IsNil() {
			p.Elem().Set(dst.Elem())
		}
		if !src.IsNil() {
			overlay(p.Elem(), src.Elem(), key, owns)
		}
		dst.Set(p)
	case dst.Kind() == reflect.Map:
		if dst.IsNil() && (src.IsNil() || !owns(key)) {
			return
		}
		m := reflect.MakeMapWithSize(dst.Type(), dst.Len()+src.Len())
		for _, k := range dst.MapKeys() {
			m.SetMapIndex(k, dst.MapIndex(k))
		}
		if owns(key) {
			for _, k := range src.MapKeys() {
				m.SetMapIndex(k, src.MapIndex(k))
			}
		}
		dst.Set(m)
	default:
		if owns(key) {
			dst.Set(src)
		}
	}
}

// yamlName is a field's key in the file, "" for none.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if !f.IsExported() || name == "-" {
		return ""
	}
	return name
}

// nonZero records in set the keys under key where v holds something other
// than the zero value (a non-nil list, even empty), and reports whether
// there was one.
func nonZero(v reflect.Value, key string, set map[string]bool) bool {
	found := false
	switch {
	case v.Type() == durationType:
		found = v.Int() != 0
	case v.Kind() == reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if name := yamlName(t.Field(i)); name != "" && nonZero(v.Field(i), join(key, name), set) {
				found = true
			}
		}
	case v.Kind() == reflect.Pointer:
		if found = !v.IsNil(); found {
			nonZero(v.Elem(), key, set)
		}
	case v.Kind() == reflect.Slice:
		found = !v.IsNil()
	case v.Kind() == reflect.Map:
		found = v.Len() > 0
	default:
		found = !v.IsZero()
	}
	if found {
		set[key] = true
	}
	return found
}

// refusedKey refuses, in a frontends[] entry, the top-level keys that
// apply to the whole gateway; the decoder reports other unknown keys as
// such.
func (FrontendSpec) refusedKey(name string) (string, bool) {
	if name == "tls" || topLevelKeys()[name] {
		return "is top-level only: it applies to the whole gateway, not to one frontend; move it to the top level", true
	}
	return "", false
}

// topLevelKeys are the keys of Config that a frontends[] entry does not
// have.
func topLevelKeys() map[string]bool {
	own := map[string]bool{}
	et := reflect.TypeFor[FrontendSpec]()
	for i := range et.NumField() {
		own[yamlName(et.Field(i))] = true
	}
	out := map[string]bool{}
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		if name := yamlName(ct.Field(i)); name != "" && !own[name] {
			out[name] = true
		}
	}
	return out
}
