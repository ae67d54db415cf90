package config

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Environment references.
//
// In a scalar value, ${NAME} is replaced by the variable NAME and
// ${NAME:-default} by NAME, or by default when NAME is unset or empty. A
// NAME is [A-Za-z_][A-Za-z0-9_]*. $$ is a literal $, also inside a default;
// any other $ in a default is refused, and a default ends at the first }.
// A $ followed by anything but { or $ is itself. Expansion is a single pass:
// a variable's value and a default are inserted verbatim, never expanded
// again, so the output holds no reference the input did not escape.
//
// Only values are expanded, never keys or comments, and the text of a value
// never becomes YAML: a variable holding ": " or a newline is part of one
// string. To let a reference stand where YAML would not take "${" (a flow
// list like [${SESSION_KEY}]), every reference on one line is masked with an
// inert word before parsing and put back in each scalar before expanding;
// the masked text keeps its lines, so line numbers are those of the file.
// So a reference, its default included, is taken as written in the file,
// not unescaped by YAML quoting.

// ref is one parsed reference.
type ref struct {
	name       string
	def        string
	hasDefault bool
}

func isNameStart(c byte) bool {
	return c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

func isNameChar(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9'
}

// Messages for references that do not parse. They never quote the text:
// it may be part of a secret.
const (
	msgBadRef       = "invalid ${...} reference: write ${NAME} or ${NAME:-default}, or $$ for a literal $"
	msgUnterminated = "unterminated ${ reference: close it with }, or write $$ for a literal $"
)

// parseRef reads the reference at the start of s, which begins with "${".
// It returns the reference and its length, or a message and how far to skip.
func parseRef(s string) (r ref, n int, msg string) {
	i := 2
	for i < len(s) && isNameChar(s[i]) {
		i++
	}
	name := s[2:i]
	skip := func(m string) (ref, int, string) {
		if j := strings.IndexByte(s, '}'); j >= 0 {
			return ref{}, j + 1, m
		}
		return ref{}, len(s), msgUnterminated
	}
	if name == "" || !isNameStart(name[0]) {
		return skip(msgBadRef)
	}
	if i < len(s) && s[i] == '}' {
		return ref{name: name}, i + 1, ""
	}
	if !strings.HasPrefix(s[i:], ":-") {
		return skip(msgBadRef)
	}
	var def strings.Builder
	for i += 2; i < len(s); {
		switch c := s[i]; {
		case c == '}':
			return ref{name: name, def: def.String(), hasDefault: true}, i + 1, ""
		case c == '$' && i+1 < len(s) && s[i+1] == '$':
			def.WriteByte('$')
			i += 2
		case c == '$':
			return skip(fmt.Sprintf("the default of ${%s} may not hold a $: write $$ for a literal $", name))
		default:
			def.WriteByte(c)
			i++
		}
	}
	return ref{}, len(s), msgUnterminated
}

// expand expands s. used tells whether s held a reference, so that the
// value is never quoted in a message; problems name variables, never values.
func expand(s string, lookup func(string) (string, bool)) (out string, used bool, problems []string) {
	if strings.IndexByte(s, '$') < 0 {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		b.WriteString(s[i : i+j])
		i += j
		if i+1 >= len(s) || s[i+1] != '$' && s[i+1] != '{' {
			b.WriteByte('$')
			i++
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		r, n, msg := parseRef(s[i:])
		i += n
		if msg != "" {
			problems = append(problems, msg)
			continue
		}
		used = true
		v, ok := lookup(r.name)
		switch {
		case ok && (v != "" || !r.hasDefault):
			b.WriteString(v)
		case r.hasDefault:
			b.WriteString(r.def)
		default:
			problems = append(problems, fmt.Sprintf("${%s} is not set: set it, or give a default with ${%s:-value}", r.name, r.name))
		}
	}
	return b.String(), used, problems
}

// masker hides references from the YAML parser and puts them back.
type masker struct {
	refs   []string
	prefix string
	unmask *strings.Replacer
}

// mask replaces every well-formed reference that fits on its line with a
// word of letters and digits (a plain scalar anywhere in YAML) that the data
// does not contain. The prefix holds one 'c', at its start, so no text
// around a mask can complete a mask early.
func mask(data []byte) ([]byte, *masker) {
	m := &masker{}
	for k := 0; ; k++ {
		m.prefix = "cloakroomref" + strconv.Itoa(k) + "q"
		if !bytes.Contains(data, []byte(m.prefix)) {
			break
		}
	}
	var out []byte
	last := 0
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '$')
		if j < 0 {
			break
		}
		i += j
		if i+1 < len(data) && data[i+1] == '$' {
			i += 2
			continue
		}
		if i+1 >= len(data) || data[i+1] != '{' {
			i++
			continue
		}
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data) - i
		}
		_, n, msg := parseRef(string(data[i : i+end]))
		if msg != "" {
			i++
			continue
		}
		out = append(out, data[last:i]...)
		out = append(out, m.word(len(m.refs))...)
		m.refs = append(m.refs, string(data[i:i+n]))
		i += n
		last = i
	}
	if len(m.refs) == 0 {
		return data, m
	}
	out = append(out, data[last:]...)
	pairs := make([]string, 0, 2*len(m.refs))
	for i, r := range m.refs {
		pairs = append(pairs, m.word(i), r)
	}
	m.unmask = strings.NewReplacer(pairs...)
	return out, m
}

func (m *masker) word(i int) string {
	return m.prefix + strconv.Itoa(i) + "z"
}

// restore puts the masked references in s back.
func (m *masker) restore(s string) string {
	if m == nil || m.unmask == nil || !strings.Contains(s, m.prefix) {
		return s
	}
	return m.unmask.Replace(s)
}
