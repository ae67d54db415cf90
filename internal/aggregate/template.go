package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/cloakroom/cloakroom/internal/httpx"
)

// source says where a template piece takes its text from.
type source uint8

const (
	fromLiteral source = iota
	fromClaims
	fromQuery
	fromPath
	fromPart
)

// piece is a literal run of a template or one placeholder.
type piece struct {
	src source
	// text is the literal text, or the placeholder's name: the claim, the
	// query parameter or the path wildcard.
	text string
	// part and field name another part's value: {parts.<part>.<field...>}.
	part  int
	field []string
}

// template is a part's Path, split at its first "?" and parsed once.
type template struct {
	path, query []piece
	hasQuery    bool
	deps        []int // parts this one waits for, each once
}

// parseTemplate parses s. parts maps part names to their index, for
// {parts.…} placeholders; wildcards, when not nil, are the names a
// {path.…} placeholder may use.
func parseTemplate(s string, parts map[string]int, wildcards map[string]bool) (template, error) {
	var t template
	if strings.Contains(s, "#") {
		return t, errors.New("a fragment is not allowed")
	}
	p, q, hasQuery := strings.Cut(s, "?")
	var err error
	if t.path, err = parsePieces(p, parts, wildcards); err != nil {
		return t, err
	}
	if t.query, err = parsePieces(q, parts, wildcards); err != nil {
		return t, err
	}
	t.hasQuery = hasQuery

	// Check the literal text with every placeholder standing in as "x".
	probe := probeOf(t.path)
	if strings.HasPrefix(probe, "/") {
		return t, errors.New("the path must be relative to the upstream (no leading \"/\")")
	}
	if err := checkChars(probe, "/"); err != nil {
		return t, fmt.Errorf("path: %w", err)
	}
	dec, err := url.PathUnescape(probe)
	if err != nil {
		return t, fmt.Errorf("path: %w", err)
	}
	if err := checkDecodedPath(dec); err != nil {
		return t, err
	}
	probe = probeOf(t.query)
	if err := checkChars(probe, "/?"); err != nil {
		return t, fmt.Errorf("query: %w", err)
	}
	if _, err := url.ParseQuery(probe); err != nil {
		return t, fmt.Errorf("query: %w", err)
	}

	seen := map[int]bool{}
	for _, pc := range append(t.path[:len(t.path):len(t.path)], t.query...) {
		if pc.src == fromPart && !seen[pc.part] {
			seen[pc.part] = true
			t.deps = append(t.deps, pc.part)
		}
	}
	return t, nil
}

func parsePieces(s string, parts map[string]int, wildcards map[string]bool) ([]piece, error) {
	var out []piece
	for s != "" {
		open := strings.IndexAny(s, "{}")
		if open < 0 {
			out = append(out, piece{text: s})
			break
		}
		if s[open] == '}' {
			return nil, fmt.Errorf("unbalanced \"}\" in %q", s)
		}
		if open > 0 {
			out = append(out, piece{text: s[:open]})
		}
		end := strings.IndexAny(s[open+1:], "{}")
		if end < 0 || s[open+1+end] == '{' {
			return nil, fmt.Errorf("unclosed \"{\" in %q", s)
		}
		pc, err := parsePlaceholder(s[open+1:open+1+end], parts, wildcards)
		if err != nil {
			return nil, err
		}
		out = append(out, pc)
		s = s[open+1+end+1:]
	}
	return out, nil
}

func parsePlaceholder(s string, parts map[string]int, wildcards map[string]bool) (piece, error) {
	kind, name, _ := strings.Cut(s, ".")
	if name == "" {
		return piece{}, fmt.Errorf("placeholder {%s}: want {claims.x}, {query.x}, {path.x} or {parts.p.x}", s)
	}
	switch kind {
	case "claims":
		return piece{src: fromClaims, text: name}, nil
	case "query":
		return piece{src: fromQuery, text: name}, nil
	case "path":
		if wildcards != nil && !wildcards[name] {
			return piece{}, fmt.Errorf("placeholder {%s}: the composite's path has no wildcard {%s}", s, name)
		}
		return piece{src: fromPath, text: name}, nil
	case "parts":
		pname, field, _ := strings.Cut(name, ".")
		i, ok := parts[pname]
		if !ok {
			return piece{}, fmt.Errorf("placeholder {%s}: no part %q", s, pname)
		}
		if field == "" {
			return piece{}, fmt.Errorf("placeholder {%s}: name a field of part %q", s, pname)
		}
		f := strings.Split(field, ".")
		if slicesContainsEmpty(f) {
			return piece{}, fmt.Errorf("placeholder {%s}: empty path segment", s)
		}
		return piece{src: fromPart, text: name, part: i, field: f}, nil
	}
	return piece{}, fmt.Errorf("placeholder {%s}: unknown source %q", s, kind)
}

func slicesContainsEmpty(s []string) bool {
	for _, x := range s {
		if x == "" {
			return true
		}
	}
	return false
}

func probeOf(ps []piece) string {
	var b strings.Builder
	for _, p := range ps {
		if p.src == fromLiteral {
			b.WriteString(p.text)
		} else {
			b.WriteByte('x')
		}
	}
	return b.String()
}

// checkChars allows what RFC 3986 allows in a path segment (or a query),
// plus the characters in extra, and well-formed percent escapes.
func checkChars(s, extra string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0:
		case strings.IndexByte(extra, c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fmt.Errorf("bad percent escape in %q", s)
			}
		default:
			return fmt.Errorf("character %q must be percent-encoded in %q", c, s)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// checkDecodedPath refuses what an upstream that decodes before routing
// could read as leaving the base: dot segments and backslashes, and what
// httpx.CheckDecodedPath refuses, the API proxy's rule: bytes that are not
// valid UTF-8 (a value "\xc0\xae", from ?q=%c0%ae, would be sent as the
// overlong %C0%AE) and escapes that a second decoding turns into a dot,
// slash or backslash (a value "%2e%2e", from ?q=%252e%252e, would be sent
// as %252e%252e).
func checkDecodedPath(p string) error {
	if strings.Contains(p, "\\") {
		return errors.New("the path must not contain a backslash")
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return errors.New("the path must not contain dot segments")
		}
	}
	return httpx.CheckDecodedPath(p)
}

// lookup resolves one placeholder to its unescaped value; inPath says
// whether it stands before the "?".
type lookup func(p piece, inPath bool) (string, *failure)

// expand writes the template's path and query, each value escaped for its
// position: url.PathEscape in the path, url.QueryEscape in the query, so a
// value stays one segment or one parameter value.
func (t *template) expand(look lookup) (escPath, rawQuery string, f *failure) {
	var b strings.Builder
	if f := expandInto(&b, t.path, look, true); f != nil {
		return "", "", f
	}
	escPath = b.String()
	if t.hasQuery {
		b.Reset()
		if f := expandInto(&b, t.query, look, false); f != nil {
			return "", "", f
		}
		rawQuery = b.String()
	}
	return escPath, rawQuery, nil
}

func expandInto(b *strings.Builder, ps []piece, look lookup, inPath bool) *failure {
	for _, p := range ps {
		if p.src == fromLiteral {
			b.WriteString(p.text)
			continue
		}
		v, f := look(p, inPath)
		if f != nil {
			return f
		}
		if inPath {
			b.WriteString(url.PathEscape(v))
		} else {
			b.WriteString(url.QueryEscape(v))
		}
	}
	return nil
}

// scalar renders a claim or a JSON value for a template; objects, arrays
// and null have no single text form and are refused.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// wildcardNames returns the wildcard names of a ServeMux pattern such as
// "GET /bff/users/{id}/dashboard" or "/files/{rest...}".
func wildcardNames(pattern string) map[string]bool {
	names := map[string]bool{}
	for {
		i := strings.IndexByte(pattern, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(pattern[i:], '}')
		if j < 0 {
			return names
		}
		if n := strings.TrimSuffix(pattern[i+1:i+j], "..."); n != "" && n != "$" {
			names[n] = true
		}
		pattern = pattern[i+j+1:]
	}
}
