package deploycheck

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Unit is a systemd unit file: for each section, each directive's values in
// the order given (a directive may repeat; an empty assignment is kept as
// "", which in systemd resets the list).
type Unit map[string]map[string][]string

// ParseUnit reads a unit file: [Section] headers, Key=Value lines, # and ;
// comments, backslash continuations.
func ParseUnit(r io.Reader) (Unit, error) {
	u := Unit{}
	var (
		section string
		logical strings.Builder
		n       int
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if logical.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			logical.WriteString(body + " ")
			continue
		}
		logical.WriteString(line)
		line = logical.String()
		logical.Reset()
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: not Key=Value inside a [Section]", n)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(val))
	}
	return u, sc.Err()
}

// Last returns the value of the directive's last assignment, and whether it
// is assigned at all.
func (u Unit) Last(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}
