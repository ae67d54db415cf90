package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// The file is decoded from goccy/go-yaml's syntax tree by the decoder below
// rather than by yaml.Unmarshal: the library stops at its first error, and
// a check should list every unknown key and bad value at once, keep the
// line of every key for Validate, and expand references in values only.
// load_test.go checks that both decoders agree on a valid file.

// meta is what Parse learnt from the file.
type meta struct {
	file string
	// lines maps a key path ("apis[1].upstream") to its line.
	lines map[string]int
	// fromEnv marks key paths whose value held a reference: such a value
	// is never quoted in a problem.
	fromEnv map[string]bool
	// given marks key paths the file gives a value other than null: what
	// a frontends[] entry sets, and so lays over the top level.
	given map[string]bool
	// secretFromFile tells that OIDC.ClientSecret was read from
	// OIDC.ClientSecretFile.
	secretFromFile bool
	// serviceSecretFromFile is the same for OIDC.ServiceClient.
	serviceSecretFromFile bool
	// adminFromFile tells that AdminToken was read from AdminTokenFile.
	adminFromFile bool
	// entrySecretFromFile tells, by the key of a client in frontends[]
	// ("frontends[0].oidc", "frontends[0].oidc.service_client"), that its
	// ClientSecret was read from its ClientSecretFile.
	entrySecretFromFile map[string]bool
	warnings            []Problem
}

// maxDepth bounds alias and merge-key chains; the types are shallower.
// maxSteps bounds the work of decoding, which aliases and merge keys could
// otherwise make exponential in the size of the file ("billion laughs").
const (
	maxDepth = 64
	maxSteps = 1 << 20
)

type decoder struct {
	meta     *meta
	lookup   func(string) (string, bool)
	masks    *masker
	anchors  map[string]ast.Node
	problems []Problem
	seen     map[Problem]bool
	depth    int
	steps    int
	// merging holds the mappings whose merge keys are being followed.
	merging map[ast.Node]bool
}

// spend counts n steps of work and reports whether the budget allows them;
// the first time it does not, it says so.
func (d *decoder) spend(key string, n ast.Node, steps int) bool {
	if d.steps > maxSteps {
		return false
	}
	d.steps += steps
	if d.steps > maxSteps {
		d.add(key, n, "aliases and merge keys expand too far: write the values out")
		return false
	}
	return true
}

var durationType = reflect.TypeFor[time.Duration]()

// add records a problem once, however often aliases lead to it.
func (d *decoder) add(key string, n ast.Node, format string, args ...any) {
	p := Problem{Line: lineOf(n), Key: key, Msg: fmt.Sprintf(format, args...)}
	if d.seen[p] {
		return
	}
	if d.seen == nil {
		d.seen = map[Problem]bool{}
	}
	d.seen[p] = true
	d.problems = append(d.problems, p)
}

func lineOf(n ast.Node) int {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// collectAnchors records every &anchor of the document by name.
func (d *decoder) collectAnchors(n ast.Node) {
	for _, a := range ast.Filter(ast.AnchorType, n) {
		a := a.(*ast.AnchorNode)
		if a.Name != nil {
			d.anchors[a.Name.GetToken().Value] = a.Value
		}
	}
}

// resolve looks through anchors, aliases and tags to the node they stand for.
func (d *decoder) resolve(key string, n ast.Node) (ast.Node, bool) {
	for range maxDepth {
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
		case *ast.TagNode:
			n = t.Value
		case *ast.AliasNode:
			name := ""
			if t.Value != nil {
				name = t.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.add(key, n, "alias *%s names no anchor: define &%s before it", name, name)
				return nil, false
			}
			n = target
		default:
			return n, true
		}
	}
	d.add(key, n, "aliases nest too deep")
	return nil, false
}

func isNull(n ast.Node) bool {
	return n == nil || reflect.ValueOf(n).IsNil() || n.Type() == ast.NullType
}

// value decodes n into v. A null leaves v as it is: the default.
func (d *decoder) value(key string, n ast.Node, v reflect.Value) {
	if !d.spend(key, n, 1) {
		return
	}
	n, ok := d.resolve(key, n)
	if !ok || isNull(n) {
		return
	}
	if d.meta.given != nil {
		d.meta.given[key] = true
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		d.add(key, n, "nested too deep")
		return
	}
	if v.Type() == durationType {
		d.duration(key, n, v)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(key, n, v)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(newElem(v.Type().Elem()).Addr())
		}
		d.value(key, n, v.Elem())
	case reflect.Slice:
		d.list(key, n, v)
	case reflect.Map:
		d.mapping(key, n, v)
	case reflect.String:
		if s, ok := d.scalar(key, n); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		d.boolean(key, n, v)
	case reflect.Int:
		d.integer(key, n, v)
	default:
		panic("config: no decoding for " + v.Type().String())
	}
}

// newElem returns a new element of t with its defaults.
func newElem(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if s, ok := p.Interface().(interface{ setDefaults() }); ok {
		s.setDefaults()
	}
	return p.Elem()
}

func kindOf(n ast.Node) string {
	switch n.Type() {
	case ast.MappingType, ast.MappingValueType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	}
	return "a single value"
}

// scalar returns the text of a scalar: a string expanded, any other
// scalar as written (so value: 1 is "1", never reformatted).
func (d *decoder) scalar(key string, n ast.Node) (string, bool) {
	var s string
	switch t := n.(type) {
	case *ast.StringNode:
		s = t.Value
	case *ast.LiteralNode:
		s = t.Value.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	default:
		d.add(key, n, "expected a single value, not %s", kindOf(n))
		return "", false
	}
	out, used, problems := expand(d.masks.restore(s), d.lookup)
	if used {
		d.meta.fromEnv[key] = true
	}
	for _, p := range problems {
		d.add(key, n, "%s", p)
	}
	return out, len(problems) == 0
}

func (d *decoder) duration(key string, n ast.Node, v reflect.Value) {
	s, ok := d.scalar(key, n)
	if !ok {
		return
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		d.add(key, n, "%s is not a duration: write a number and a unit, e.g. 30s, 5m or 12h", d.quote(key, s))
		return
	}
	v.SetInt(int64(t))
}

// integer takes a whole number.
func (d *decoder) integer(key string, n ast.Node, v reflect.Value) {
	s, ok := d.scalar(key, n)
	if !ok {
		return
	}
	i, err := strconv.Atoi(s)
	if err != nil {
		d.add(key, n, "%s is not a whole number", d.quote(key, s))
		return
	}
	v.SetInt(int64(i))
}

// boolean takes true or false; a reference may give either as text.
func (d *decoder) boolean(key string, n ast.Node, v reflect.Value) {
	if b, ok := n.(*ast.BoolNode); ok {
		v.SetBool(b.Value)
		return
	}
	s, ok := d.scalar(key, n)
	if !ok {
		return
	}
	if d.meta.fromEnv[key] && (s == "true" || s == "false") {
		v.SetBool(s == "true")
		return
	}
	d.add(key, n, "%s is not a boolean: write true or false", d.quote(key, s))
}

// quote quotes a value for a message unless it came from the environment.
func (d *decoder) quote(key, s string) string {
	if d.meta.fromEnv[key] {
		return "the value"
	}
	return strconv.Quote(s)
}

func (d *decoder) list(key string, n ast.Node, v reflect.Value) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.add(key, n, "expected a list, not %s: write [a, b] or one \"- item\" a line", kindOf(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(seq.Values))
	for i, e := range seq.Values {
		k := fmt.Sprintf("%s[%d]", key, i)
		d.meta.lines[k] = lineOf(e)
		elem := newElem(v.Type().Elem())
		d.value(k, e, elem)
		out = reflect.Append(out, elem)
	}
	v.Set(out)
}

// pairs returns the key/value pairs of a mapping, those of merge keys
// (<<: *anchor) first so that the mapping's own keys win.
func (d *decoder) pairs(key string, n ast.Node) ([]*ast.MappingValueNode, bool) {
	var own []*ast.MappingValueNode
	switch t := n.(type) {
	case *ast.MappingNode:
		own = t.Values
	case *ast.MappingValueNode:
		own = []*ast.MappingValueNode{t}
	default:
		d.add(key, n, "expected a mapping of keys to values, not %s", kindOf(n))
		return nil, false
	}
	var merged, rest []*ast.MappingValueNode
	for _, p := range own {
		if p.Key == nil || p.Key.Type() != ast.MergeKeyType {
			rest = append(rest, p)
			continue
		}
		if d.merging[n] {
			d.add(key, p.Key, "a merge key leads back to its own mapping: remove the loop")
			continue
		}
		if d.merging == nil {
			d.merging = map[ast.Node]bool{}
		}
		d.merging[n] = true
		d.depth++
		merged = append(merged, d.merge(key, p.Value)...)
		d.depth--
		delete(d.merging, n)
	}
	return append(merged, rest...), true
}

func (d *decoder) merge(key string, n ast.Node) []*ast.MappingValueNode {
	if !d.spend(key, n, 1) {
		return nil
	}
	if d.depth > maxDepth {
		d.add(key, n, "merge keys nest too deep")
		return nil
	}
	n, ok := d.resolve(key, n)
	if !ok || isNull(n) {
		return nil
	}
	if seq, ok := n.(*ast.SequenceNode); ok {
		var out []*ast.MappingValueNode
		for _, e := range seq.Values {
			if e, ok := d.resolve(key, e); ok && !isNull(e) {
				ps, _ := d.pairs(key, e)
				if !d.spend(key, e, len(ps)) {
					return nil
				}
				out = append(out, ps...)
			}
		}
		return out
	}
	ps, _ := d.pairs(key, n)
	if !d.spend(key, n, len(ps)) {
		return nil
	}
	return ps
}

// keyText returns a mapping key as text; keys are never expanded.
func (d *decoder) keyText(parent string, p *ast.MappingValueNode) (string, bool) {
	var n ast.Node = p.Key
	if mk, ok := n.(*ast.MappingKeyNode); ok {
		n = mk.Value
	}
	var s string
	switch t := n.(type) {
	case *ast.StringNode:
		s = t.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode:
		s = t.GetToken().Value
	default:
		d.add(parent, p.Key, "keys must be plain words")
		return "", false
	}
	return d.masks.restore(s), true
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func join(parent, key string) string {
	switch {
	case !plainKey.MatchString(key):
		return parent + "[" + strconv.Quote(key) + "]"
	case parent == "":
		return key
	}
	return parent + "." + key
}

func (d *decoder) structure(key string, n ast.Node, v reflect.Value) {
	ps, ok := d.pairs(key, n)
	if !ok {
		return
	}
	t := v.Type()
	var names []string
	index := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	for _, p := range ps {
		name, ok := d.keyText(key, p)
		if !ok {
			continue
		}
		k := join(key, name)
		i, ok := index[name]
		if !ok {
			msg := unknownKey(key, name, names)
			if r, isRefuser := v.Interface().(keyRefuser); isRefuser {
				if m, refused := r.refusedKey(name); refused {
					msg = m
				}
			}
			d.add(k, p.Key, "%s", msg)
			continue
		}
		d.meta.lines[k] = lineOf(p.Key)
		d.value(k, p.Value, v.Field(i))
	}
}

func (d *decoder) mapping(key string, n ast.Node, v reflect.Value) {
	ps, ok := d.pairs(key, n)
	if !ok {
		return
	}
	v.Set(reflect.MakeMapWithSize(v.Type(), len(ps)))
	for _, p := range ps {
		name, ok := d.keyText(key, p)
		if !ok {
			continue
		}
		k := join(key, name)
		d.meta.lines[k] = lineOf(p.Key)
		elem := newElem(v.Type().Elem())
		d.value(k, p.Value, elem)
		v.SetMapIndex(reflect.ValueOf(name), elem)
	}
}

// keyRefuser is a type whose mapping refuses some keys with a message of
// its own rather than as unknown: a frontends[] entry, for the keys that
// apply to the whole gateway.
type keyRefuser interface {
	refusedKey(name string) (msg string, refused bool)
}

// unknownKey says what is wrong with name under parent and what would fit.
func unknownKey(parent, name string, known []string) string {
	if strings.Contains(name, "${") {
		return "unknown key; references are expanded in values only, never in keys"
	}
	best, dist := "", 3
	for _, k := range known {
		if e := editDistance(name, k); e < dist {
			best, dist = k, e
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key; did you mean %q?", best)
	}
	where := "at the top level"
	if parent != "" {
		where = "under " + parent
	}
	return fmt.Sprintf("unknown key; the keys %s are: %s", where, strings.Join(known, ", "))
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sortProblems orders problems by line, keeping the order of one line.
func sortProblems(list []Problem) {
	slices.SortStableFunc(list, func(a, b Problem) int { return a.Line - b.Line })
}
