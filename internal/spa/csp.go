package spa

import (
	"slices"
	"strings"
)

// AddConnectSources returns policy with sources added to its connect-src
// directive (CSP Level 3 §6.1.2), each once, in order, after the sources
// the directive already has; a policy without connect-src gets one
// holding 'self' and sources, since default-src would otherwise have
// governed it. Sources are origins such as https://api.example.com; an
// empty list returns policy unchanged.
func AddConnectSources(policy string, sources ...string) string {
	if len(sources) == 0 {
		return policy
	}
	directives := strings.Split(policy, ";")
	for i, d := range directives {
		fields := strings.Fields(d)
		if len(fields) == 0 || !strings.EqualFold(fields[0], "connect-src") {
			continue
		}
		for _, s := range sources {
			if !slices.Contains(fields[1:], s) {
				fields = append(fields, s)
			}
		}
		lead := ""
		if i > 0 {
			lead = " "
		}
		directives[i] = lead + strings.Join(fields, " ")
		return strings.Join(directives, ";")
	}
	add := []string{"connect-src", "'self'"}
	for _, s := range sources {
		if !slices.Contains(add, s) {
			add = append(add, s)
		}
	}
	return strings.TrimRight(strings.TrimSpace(policy), ";") + "; " + strings.Join(add, " ")
}
