package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Problem is one thing wrong with the file. Line is 0 when the key is not in
// the file (or for the file as a whole); Key is a path such as
// "session.keys[0]" or "apis[1].upstream". Msg names the fix and never holds
// a secret or a value that came from the environment. A Warning does not
// make Load fail.
type Problem struct {
	Line    int
	Key     string
	Msg     string
	Warning bool
}

// Problems is every problem of one file, the error Load and Parse return.
type Problems struct {
	File string
	List []Problem
}

// Error prints one problem a line, ordered by line, as
// "FILE:LINE: KEY: MESSAGE"; ":LINE" is left out for line 0, "KEY: " when
// there is no key, and a warning says "warning: " before its key.
func (p *Problems) Error() string {
	list := slices.Clone(p.List)
	sortProblems(list)
	var b strings.Builder
	for i, q := range list {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.File)
		if q.Line > 0 {
			fmt.Fprintf(&b, ":%d", q.Line)
		}
		b.WriteString(": ")
		if q.Warning {
			b.WriteString("warning: ")
		}
		if q.Key != "" {
			b.WriteString(q.Key + ": ")
		}
		b.WriteString(q.Msg)
	}
	return b.String()
}

// Load reads the file at path and returns it as Parse does.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Problems{File: path, List: []Problem{{Msg: "cannot read the file: " + fsReason(err)}}}
	}
	return Parse(path, data, lookupEnv)
}

// Parse reads a config file's contents; name is the file's name in
// problems. It expands references in values (see expand.go), decodes
// strictly from defaults (Default; a key given as null keeps its default),
// reads oidc.client_secret_file, and runs Validate. Any problem other than
// a warning fails it with a *Problems listing them all; warnings alone are
// kept for Config.Warnings. lookupEnv is usually os.LookupEnv; nil means no
// variable is set.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	cfg, list := parse(name, data, lookupEnv)
	for _, p := range list {
		if !p.Warning {
			return nil, &Problems{File: name, List: list}
		}
	}
	cfg.meta.warnings = list
	return cfg, nil
}

// parse is Parse without its verdict: the Config as decoded (nil when the
// file is not one YAML document) and every problem, warnings included,
// ordered by line.
func parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, []Problem) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	masked, masks := mask(data)
	cfg := Default()
	cfg.meta = &meta{file: name, lines: map[string]int{}, fromEnv: map[string]bool{}, given: map[string]bool{}}

	f, err := parseYAML(masked)
	if err != nil {
		return nil, []Problem{syntaxProblem(err, masks)}
	}
	var docs []ast.Node
	for _, doc := range f.Docs {
		if doc.Body != nil {
			docs = append(docs, doc.Body)
		}
	}
	if len(docs) > 1 {
		return nil, []Problem{{Line: lineOf(docs[1]), Msg: "the file holds more than one YAML document: keep one, without ---"}}
	}

	d := &decoder{meta: cfg.meta, lookup: lookupEnv, masks: masks, anchors: map[string]ast.Node{}}
	if len(docs) == 1 {
		d.collectAnchors(docs[0])
		d.value("", docs[0], reflect.ValueOf(cfg).Elem())
	}
	list := d.problems
	list = append(list, cfg.readSecretFiles()...)
	list = append(list, cfg.readAdminTokenFile()...)

	// A key that did not decode keeps its default or stays empty; what
	// Validate says about it, or below it, adds nothing.
	failed := list
	for _, p := range cfg.Validate() {
		if !slices.ContainsFunc(failed, func(f Problem) bool { return under(p.Key, f.Key) }) {
			list = append(list, p)
		}
	}
	sortProblems(list)
	return cfg, list
}

// under reports whether key is parent or below it.
func under(key, parent string) bool {
	if parent == "" || key == parent {
		return true
	}
	rest, ok := strings.CutPrefix(key, parent)
	return ok && (rest[0] == '.' || rest[0] == '[')
}

// parseYAML parses data; a panic in the parser is turned into an error, so
// that a hostile file is reported, not a crash.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the parser failed: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

// syntaxProblem turns a parse error into a problem at its line.
func syntaxProblem(err error, masks *masker) Problem {
	var ye yaml.Error
	if errors.As(err, &ye) {
		p := Problem{Msg: "invalid YAML: " + masks.restore(ye.GetMessage())}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line = tk.Position.Line
		}
		return p
	}
	return Problem{Msg: "invalid YAML: " + masks.restore(err.Error())}
}

// readSecretFiles fills the client secrets of oidc and oidc.service_client
// from their client_secret_file, at the top level and in each frontends[]
// entry.
func (c *Config) readSecretFiles() []Problem {
	o := &c.OIDC
	list := c.readSecretFile("oidc.client_secret_file", o.ClientSecretFile, &o.ClientSecret, &c.meta.secretFromFile)
	if sc := o.ServiceClient; sc != nil {
		list = append(list, c.readSecretFile("oidc.service_client.client_secret_file", sc.ClientSecretFile, &sc.ClientSecret, &c.meta.serviceSecretFromFile)...)
	}
	for i := range c.Frontends {
		o := &c.Frontends[i].OIDC
		p := fmt.Sprintf("frontends[%d].oidc", i)
		list = append(list, c.readEntrySecret(p, o.ClientSecretFile, &o.ClientSecret)...)
		if sc := o.ServiceClient; sc != nil {
			list = append(list, c.readEntrySecret(p+".service_client", sc.ClientSecretFile, &sc.ClientSecret)...)
		}
	}
	return list
}

// readEntrySecret is readSecretFile for the client at prefix in a
// frontends[] entry ("frontends[0].oidc").
func (c *Config) readEntrySecret(prefix, file string, secret *string) []Problem {
	var fromFile bool
	list := c.readSecretFile(prefix+".client_secret_file", file, secret, &fromFile)
	if fromFile {
		if c.meta.entrySecretFromFile == nil {
			c.meta.entrySecretFromFile = map[string]bool{}
		}
		c.meta.entrySecretFromFile[prefix] = true
	}
	return list
}

// readSecretFile fills *secret from file, the value of key, trailing
// newlines trimmed, and sets *fromFile; it does nothing when there is no
// file or the file also gives a secret, which Validate reports.
func (c *Config) readSecretFile(key, file string, secret *string, fromFile *bool) []Problem {
	if file == "" || *secret != "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return []Problem{{Line: c.line(key), Key: key, Msg: "cannot read the file: " + fsReason(err)}}
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return []Problem{{Line: c.line(key), Key: key, Msg: "the file is empty: put the client secret in it"}}
	}
	*secret = s
	*fromFile = true
	return nil
}

// readAdminTokenFile fills AdminToken from AdminTokenFile.
func (c *Config) readAdminTokenFile() []Problem {
	if c.AdminTokenFile == "" || c.AdminToken != "" {
		return nil
	}
	const key = "admin_token_file"
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return []Problem{{Line: c.line(key), Key: key, Msg: "cannot read the file: " + fsReason(err)}}
	}
	c.AdminToken = strings.TrimRight(string(b), "\r\n")
	if c.meta != nil {
		c.meta.adminFromFile = true
	}
	return nil
}

// fsReason says why a file could not be used without repeating its name,
// which may have come from the environment.
func fsReason(err error) string {
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "it does not exist"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.As(err, &pe):
		return pe.Err.Error()
	}
	return err.Error()
}
