package aggregate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Profile shapes a composite's merged object for one kind of frontend.
//
// Every path is a dot path into the merged object, so it starts with a part
// name: "orders.items.total". Allow and Deny go through arrays: a path
// that meets an array applies its rest to every element. They run in this
// order:
//
//   - Allow keeps only the listed paths and what lies below them; empty
//     keeps everything. A failed part stays null when any path names it.
//     Array elements that are neither objects nor arrays are dropped where
//     a path still has keys to follow.
//   - Deny removes the listed paths.
//   - Map renames a kept path: "profile.name" -> "name" moves the value to
//     a new top-level key, "orders" -> "recent.orders" into a new object.
//     Deeper sources move first: with "profile.name" -> "name" and
//     "profile" -> "user", the name leaves before the rest becomes "user".
//     Map paths go through objects only (never arrays); a missing source
//     moves nothing and a target replaces what was there. Every source
//     must be kept by Allow and no target may be "_meta" or lie inside
//     another target.
//
// The "_meta" object of failed parts is added after shaping, so it always
// survives.
type Profile struct {
	Allow []string
	Deny  []string
	Map   map[string]string
}

// node is a trie of dot paths; a leaf covers everything below it.
type node struct {
	leaf bool
	kids map[string]*node
}

func (n *node) add(path []string) {
	for _, k := range path {
		if n.leaf {
			return
		}
		if n.kids == nil {
			n.kids = map[string]*node{}
		}
		c := n.kids[k]
		if c == nil {
			c = &node{}
			n.kids[k] = c
		}
		n = c
	}
	n.leaf, n.kids = true, nil
}

// covers reports whether the trie reaches path: path lies at or below a
// leaf, or some listed path runs through it.
func (n *node) covers(path []string) bool {
	for _, k := range path {
		if n.leaf {
			return true
		}
		if n = n.kids[k]; n == nil {
			return false
		}
	}
	return true
}

type rename struct{ from, to []string }

// shaper is a compiled Profile.
type shaper struct {
	allow, deny *node // nil: keep everything, remove nothing
	renames     []rename
	// Per part: drop means the profile can never show it, decode that it
	// looks inside it; a part that is neither is copied as raw JSON.
	drop, decode []bool
}

func splitPath(p string, parts map[string]int, what string) ([]string, error) {
	s := strings.Split(p, ".")
	if slicesContainsEmpty(s) {
		return nil, fmt.Errorf("%s %q: empty path segment", what, p)
	}
	if parts != nil {
		if _, ok := parts[s[0]]; !ok {
			return nil, fmt.Errorf("%s %q: no part %q", what, p, s[0])
		}
	}
	return s, nil
}

func compileProfile(p Profile, names []string, parts map[string]int) (*shaper, error) {
	s := &shaper{}
	if len(p.Allow) > 0 {
		s.allow = &node{}
		for _, a := range p.Allow {
			path, err := splitPath(a, parts, "allow")
			if err != nil {
				return nil, err
			}
			s.allow.add(path)
		}
	}
	if len(p.Deny) > 0 {
		s.deny = &node{}
		for _, d := range p.Deny {
			path, err := splitPath(d, parts, "deny")
			if err != nil {
				return nil, err
			}
			s.deny.add(path)
		}
	}
	targets := &node{}
	// Deeper sources first, so {"profile.name": "name", "profile": "user"}
	// lifts the name out before the rest of profile moves.
	froms := slices.SortedFunc(maps.Keys(p.Map), func(a, b string) int {
		if c := strings.Count(b, ".") - strings.Count(a, "."); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, from := range froms {
		to := p.Map[from]
		f, err := splitPath(from, parts, "map")
		if err != nil {
			return nil, err
		}
		t, err := splitPath(to, nil, "map target")
		if err != nil {
			return nil, err
		}
		if t[0] == metaKey {
			return nil, fmt.Errorf("map target %q: %q is reserved", to, metaKey)
		}
		if targets.covers(t) {
			return nil, fmt.Errorf("map target %q overlaps another target", to)
		}
		targets.add(t)
		if s.allow != nil && !s.allow.covers(f) {
			return nil, fmt.Errorf("map %q: the path is not in allow", from)
		}
		s.renames = append(s.renames, rename{from: f, to: t})
	}

	s.drop = make([]bool, len(names))
	s.decode = make([]bool, len(names))
	for i, name := range names {
		inside := func(n *node) bool {
			c := n.kids[name]
			return c != nil && !c.leaf
		}
		s.drop[i] = s.allow != nil && s.allow.kids[name] == nil ||
			s.deny != nil && s.deny.kids[name] != nil && s.deny.kids[name].leaf
		s.decode[i] = s.allow != nil && inside(s.allow) || s.deny != nil && inside(s.deny)
		for _, rn := range s.renames {
			if rn.from[0] == name && len(rn.from) > 1 || rn.to[0] == name && len(rn.to) > 1 {
				s.decode[i] = true
			}
		}
	}
	return s, nil
}

// apply shapes the merged object m (part name -> decoded value, raw JSON
// or nil for a failed part) and returns the result.
func (s *shaper) apply(m map[string]any) map[string]any {
	if s.allow != nil {
		v, _ := project(m, s.allow)
		m = v.(map[string]any)
	}
	if s.deny != nil {
		prune(m, s.deny)
	}
	if len(s.renames) > 0 {
		// Take every source first, so two renames can swap values.
		moved := make([]any, len(s.renames))
		found := make([]bool, len(s.renames))
		for i, rn := range s.renames {
			moved[i], found[i] = take(m, rn.from)
		}
		for i, rn := range s.renames {
			if found[i] {
				put(m, rn.to, moved[i])
			}
		}
	}
	return m
}

// project returns the parts of v that n keeps; false when nothing is kept.
func project(v any, n *node) (any, bool) {
	if n.leaf {
		return v, true
	}
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(n.kids))
		for k, c := range n.kids {
			if x, ok := t[k]; ok {
				if y, ok := project(x, c); ok {
					out[k] = y
				}
			}
		}
		return out, true
	case []any:
		out := make([]any, 0, len(t))
		for _, e := range t {
			if y, ok := project(e, n); ok {
				out = append(out, y)
			}
		}
		return out, true
	case nil:
		return nil, true
	}
	return nil, false
}

// prune removes the paths in n from v, in place.
func prune(v any, n *node) {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range n.kids {
			if c.leaf {
				delete(t, k)
			} else if x, ok := t[k]; ok {
				prune(x, c)
			}
		}
	case []any:
		for _, e := range t {
			prune(e, n)
		}
	}
}

// take removes and returns the value at path, following objects only.
func take(m map[string]any, path []string) (any, bool) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	last := path[len(path)-1]
	v, ok := m[last]
	if ok {
		delete(m, last)
	}
	return v, ok
}

// put sets path to v, creating objects on the way; it gives up where the
// way is blocked by something that is not an object.
func put(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		x, ok := m[k]
		if !ok {
			next := map[string]any{}
			m[k] = next
			m = next
			continue
		}
		next, ok := x.(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	m[path[len(path)-1]] = v
}
