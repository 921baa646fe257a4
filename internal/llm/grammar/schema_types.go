package grammar

import (
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// typed compiles a schema with no $ref/allOf/anyOf/oneOf left: the union of
// one branch per allowed type, each constrained by its type's keywords.
func (c *schemaCompiler) typed(s map[string]any, depth int) (string, error) {
	types := allTypes
	if t, ok := s["type"]; ok {
		switch t.(type) {
		case string, []any:
		default:
			return "", schemaErrf("type", "type must be a string or an array of strings")
		}
		types = typeList(t)
		for _, x := range types {
			if !slices.Contains(allTypes, x) {
				return "", schemaErrf("type", "unknown type %q", x)
			}
		}
	}
	_, hasEnum := s["enum"]
	_, hasConst := s["const"]
	if hasEnum || hasConst {
		return c.enum(s, depth)
	}
	has := func(t string) bool { return slices.Contains(types, t) }
	var alts []string
	if has("null") {
		alts = append(alts, `"null"`)
	}
	if has("boolean") {
		alts = append(alts, `"true" | "false"`)
	}
	if has("object") {
		e, err := c.object(s, depth)
		if err != nil {
			return "", err
		}
		alts = append(alts, e)
	}
	if has("array") {
		e, err := c.array(s, depth)
		if err != nil {
			return "", err
		}
		alts = append(alts, e)
	}
	if has("string") {
		e, err := c.str(s)
		if err != nil {
			return "", err
		}
		alts = append(alts, e)
	}
	if has("number") || has("integer") {
		e, err := c.number(s, !has("number"))
		if err != nil {
			return "", err
		}
		alts = append(alts, e)
	}
	if len(alts) == 0 {
		return "nothing", nil
	}
	return c.rule(strings.Join(alts, " | ")), nil
}

// enum compiles enum/const: the canonical text of each listed value that
// also satisfies the schema's other keywords (checked with the grammar of
// the rest of the schema).
func (c *schemaCompiler) enum(s map[string]any, depth int) (string, error) {
	var values []any
	if v, ok := s["const"]; ok {
		values = []any{v}
	}
	if v, ok := s["enum"]; ok {
		list, ok := v.([]any)
		if !ok {
			return "", schemaErrf("enum", "enum must be an array")
		}
		if values != nil {
			var both []any
			for _, x := range list {
				if string(canonical(x)) == string(canonical(values[0])) {
					both = append(both, x)
				}
			}
			list = both
		}
		values = list
	}
	rest := without(without(s, "enum"), "const")
	var check *Grammar
	if hasConstraints(rest) {
		sub := newSchemaCompiler(c.root)
		sub.work = c.work
		e, err := sub.compile(rest, depth+1)
		if err != nil {
			return "", err
		}
		if check, err = Compile(sub.text(e)); err != nil {
			return "", err
		}
	}
	var alts []string
	seen := map[string]bool{}
	for _, v := range values {
		lit := canonical(v)
		if seen[string(lit)] || check != nil && !check.Match(lit) {
			continue
		}
		seen[string(lit)] = true
		alts = append(alts, literal(lit))
	}
	if len(alts) == 0 {
		return "nothing", nil
	}
	return c.rule(strings.Join(alts, " | ")), nil
}

func count(s map[string]any, kw string) (int, bool, error) {
	v, ok := s[kw]
	if !ok {
		return 0, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false, schemaErrf(kw, "%s must be a number", kw)
	}
	r := toRat(n)
	if r == nil || !r.IsInt() || r.Sign() < 0 {
		return 0, false, schemaErrf(kw, "%s must be a non-negative integer", kw)
	}
	if r.Cmp(big.NewRat(maxSchemaRepeat, 1)) > 0 {
		return 0, false, schemaErrf(kw, "unsupported JSON Schema keyword %q above %d", kw, maxSchemaRepeat)
	}
	return int(r.Num().Int64()), true, nil
}

// object compiles the object branch. Members appear in sorted key order
// (Go's encoding/json order); additional members may appear in any order
// between them.
func (c *schemaCompiler) object(s map[string]any, depth int) (string, error) {
	p := map[string]any{}
	if v, ok := s["properties"]; ok {
		m, ok := v.(map[string]any)
		if !ok {
			return "", schemaErrf("properties", "properties must be an object")
		}
		p = m
	}
	req := map[string]bool{}
	if v, ok := s["required"]; ok {
		l, ok := v.([]any)
		if !ok {
			return "", schemaErrf("required", "required must be an array of strings")
		}
		for _, x := range l {
			k, ok := x.(string)
			if !ok {
				return "", schemaErrf("required", "required must be an array of strings")
			}
			req[k] = true
		}
	}
	var addl any = true
	if v, ok := s["additionalProperties"]; ok {
		addl = v
	}
	keys := make([]string, 0, len(p)+len(req))
	for k := range p {
		keys = append(keys, k)
	}
	for k := range req {
		if _, ok := p[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	addExpr, err := c.compile(addl, depth+1)
	if err != nil {
		return "", err
	}
	allowAdd := addExpr != "nothing"
	var addKV string
	if allowAdd {
		addKV = c.rule(c.keyExcept(keys) + ` ":" ` + addExpr)
	}
	// slots: add*, k1, add*, k2, ..., kn, add*
	type slot struct {
		kv       string
		required bool
		star     bool
	}
	var slots []slot
	if allowAdd {
		slots = append(slots, slot{kv: addKV, star: true})
	}
	for _, k := range keys {
		var sub any = addl
		if v, ok := p[k]; ok {
			sub = v
		}
		e, err := c.compile(sub, depth+1)
		if err != nil {
			return "", err
		}
		if e == "nothing" {
			if req[k] {
				return "nothing", nil
			}
			continue
		}
		kv := c.rule(literal(canonical(k)) + ` ":" ` + e)
		slots = append(slots, slot{kv: kv, required: req[k]})
		if allowAdd {
			slots = append(slots, slot{kv: addKV, star: true})
		}
	}
	// S[i][first]: members from slot i on; first = nothing emitted yet.
	n := len(slots)
	names := make([][2]string, n+1)
	for i := range names {
		names[i] = [2]string{c.reserve(), c.reserve()}
	}
	for f := 0; f < 2; f++ {
		c.define(names[n][f], `""`)
	}
	for i := n - 1; i >= 0; i-- {
		for f := 0; f < 2; f++ {
			sep := `"," `
			if f == 1 {
				sep = ""
			}
			sl := slots[i]
			var body string
			switch {
			case sl.star:
				body = fmt.Sprintf(`%s%s %s | %s`, sep, sl.kv, names[i][0], names[i+1][f])
			case sl.required:
				body = fmt.Sprintf(`%s%s %s`, sep, sl.kv, names[i+1][0])
			default:
				body = fmt.Sprintf(`%s%s %s | %s`, sep, sl.kv, names[i+1][0], names[i+1][f])
			}
			c.define(names[i][f], body)
		}
	}
	return c.rule(`"{" ` + names[0][1] + ` "}"`), nil
}

// keyExcept is a JSON string other than the canonical encodings of keys.
// Escaped spellings of a listed key (e.g. "\u0061" for "a") are not
// recognised as that key (documented approximation).
func (c *schemaCompiler) keyExcept(keys []string) string {
	if len(keys) == 0 {
		return "string"
	}
	// trie over the encoded key content, by encoded character units
	type trie struct {
		kids map[string]*trie
		term bool
	}
	root := &trie{kids: map[string]*trie{}}
	for _, k := range keys {
		enc := string(canonical(k))
		enc = enc[1 : len(enc)-1]
		t := root
		for _, u := range encodedUnits(enc) {
			nt, ok := t.kids[u]
			if !ok {
				nt = &trie{kids: map[string]*trie{}}
				t.kids[u] = nt
			}
			t = nt
		}
		t.term = true
	}
	rest := c.rule(`char* "\""`)
	var build func(t *trie) string
	build = func(t *trie) string {
		var alts []string
		if !t.term {
			alts = append(alts, `"\""`)
		}
		units := make([]string, 0, len(t.kids))
		for u := range t.kids {
			units = append(units, u)
		}
		sort.Strings(units)
		excl := `"\\\x00-\x1F`
		var escExcl string
		for _, u := range units {
			alts = append(alts, literal([]byte(u))+" "+build(t.kids[u]))
			switch {
			case len(u) == 2 && u[0] == '\\':
				escExcl += classEscape(rune(u[1]))
			case u[0] != '\\':
				excl += classEscape([]rune(u)[0])
			}
		}
		alts = append(alts, "[^"+excl+"] "+rest)
		var esc string
		for _, e := range `"\\/bfnrt` {
			if !strings.Contains(escExcl, string(e)) {
				esc += classEscape(e)
			}
		}
		escAlt := `"u" [0-9a-fA-F]{4}`
		if esc != "" {
			escAlt = "[" + esc + "] | " + escAlt
		}
		alts = append(alts, `"\\" ( `+escAlt+` ) `+rest)
		return c.rule(strings.Join(alts, " | "))
	}
	// the escape alternative must still be a valid JSON escape
	return `"\"" ` + build(root)
}

// encodedUnits splits JSON string content into characters and escapes.
func encodedUnits(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		if s[i] == '\\' {
			n := 2
			if i+1 < len(s) && s[i+1] == 'u' {
				n = 6
			}
			out = append(out, s[i:min(i+n, len(s))])
			i += n
			continue
		}
		r := []rune(s[i:])[0]
		n := len(string(r))
		out = append(out, s[i:i+n])
		i += n
	}
	return out
}

func classEscape(r rune) string {
	switch r {
	case '\\', ']', '[', '^', '-', '"':
		return `\` + string(r)
	}
	if r < 0x20 || r == 0x7f {
		return fmt.Sprintf(`\x%02X`, r)
	}
	return string(r)
}

// array compiles the array branch: prefixItems, items, minItems, maxItems.
func (c *schemaCompiler) array(s map[string]any, depth int) (string, error) {
	var prefix []any
	if v, ok := s["prefixItems"]; ok {
		l, ok := v.([]any)
		if !ok {
			return "", schemaErrf("prefixItems", "prefixItems must be an array")
		}
		prefix = l
	}
	var items any = true
	if v, ok := s["items"]; ok {
		items = v
	}
	minN, _, err := count(s, "minItems")
	if err != nil {
		return "", err
	}
	maxN, hasMax, err := count(s, "maxItems")
	if err != nil {
		return "", err
	}
	if hasMax && maxN < minN {
		return "nothing", nil
	}
	rest, err := c.compile(items, depth+1)
	if err != nil {
		return "", err
	}
	elems := make([]string, len(prefix))
	for i, p := range prefix {
		if elems[i], err = c.compile(p, depth+1); err != nil {
			return "", err
		}
	}
	// positions 0..k-1 explicit, then the rest repeated
	k := max(len(prefix), minN)
	if hasMax && k > maxN {
		k = maxN
	}
	at := func(i int) string {
		if i < len(prefix) {
			return elems[i]
		}
		return rest
	}
	// tail after position k-1
	var tail string
	switch {
	case rest == "nothing" || hasMax && maxN == k:
		tail = ""
	case hasMax:
		tail = fmt.Sprintf(`( "," %s ){0,%d}`, rest, maxN-k)
	default:
		tail = fmt.Sprintf(`( "," %s )*`, rest)
	}
	// build from the end: seq(i) = elem_i seq(i+1), optional when i >= minN
	cur := tail
	for i := k - 1; i >= 0; i-- {
		sep := `"," `
		if i == 0 {
			sep = ""
		}
		body := strings.TrimSpace(sep + at(i) + " " + cur)
		if i >= minN {
			cur = "( " + body + " )?"
		} else {
			cur = body
		}
	}
	if k == 0 {
		// no explicit positions: zero or more of rest
		switch {
		case rest == "nothing" || hasMax && maxN == 0:
			cur = ""
		case hasMax:
			cur = fmt.Sprintf(`( %s ( "," %s ){0,%d} )?`, rest, rest, maxN-1)
		default:
			cur = fmt.Sprintf(`( %s ( "," %s )* )?`, rest, rest)
		}
	}
	return c.rule(`"[" ` + cur + ` "]"`), nil
}

// formats maps supported string formats to GBNF for their content.
var formats = map[string]string{
	"date":      `date-fmt`,
	"time":      `time-fmt`,
	"date-time": `date-fmt [Tt] time-fmt`,
	"uuid":      `[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}`,
	"ipv4":      `octet "." octet "." octet "." octet`,
	"email":     `[A-Za-z0-9!#$%&'*+/=?^_{|}~-]+ ( "." [A-Za-z0-9!#$%&'*+/=?^_{|}~-]+ )* "@" label ( "." label )+`,
}

const formatRules = `date-fmt ::= [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] )
time-fmt ::= ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" ( [0-5] [0-9] | "60" ) ( "." [0-9]+ )? ( [Zz] | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )
octet ::= "25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9]
label ::= [A-Za-z0-9] ( [A-Za-z0-9-]{0,61} [A-Za-z0-9] )?`

// str compiles the string branch.
func (c *schemaCompiler) str(s map[string]any) (string, error) {
	minN, _, err := count(s, "minLength")
	if err != nil {
		return "", err
	}
	maxN, hasMax, err := count(s, "maxLength")
	if err != nil {
		return "", err
	}
	_, hasLen := s["minLength"]
	hasLen = hasLen || hasMax
	if f, ok := s["format"]; ok {
		fs, _ := f.(string)
		body, ok := formats[fs]
		if !ok {
			return "", schemaErrf("format", "unsupported JSON Schema format %q (supported: date, time, date-time, uuid, ipv4, email)", fs)
		}
		if hasLen {
			return "", schemaErrf("format", "unsupported JSON Schema keyword \"format\" combined with minLength/maxLength")
		}
		if _, ok := s["pattern"]; ok {
			return "", schemaErrf("pattern", "unsupported JSON Schema keyword \"pattern\" combined with format")
		}
		c.addFormatRules()
		return c.rule(`"\"" ` + body + ` "\""`), nil
	}
	if p, ok := s["pattern"]; ok {
		ps, ok := p.(string)
		if !ok {
			return "", schemaErrf("pattern", "pattern must be a string")
		}
		if hasLen {
			return "", schemaErrf("pattern", "unsupported JSON Schema keyword \"pattern\" combined with minLength/maxLength")
		}
		return c.pattern(ps)
	}
	if hasMax && maxN < minN {
		return "nothing", nil
	}
	switch {
	case hasMax:
		return c.rule(fmt.Sprintf(`"\"" char{%d,%d} "\""`, minN, maxN)), nil
	case minN > 0:
		return c.rule(fmt.Sprintf(`"\"" char{%d,} "\""`, minN)), nil
	}
	return "string", nil
}

func (c *schemaCompiler) addFormatRules() {
	for _, r := range c.rules {
		if strings.HasPrefix(r, "date-fmt ::=") {
			return
		}
	}
	c.rules = append(c.rules, strings.Split(formatRules, "\n")...)
}

// number compiles the number (or, with intOnly, integer) branch with its
// bounds. Integer bounds are exact for any bound; number bounds must be
// integer-valued, and bounded numbers are written without an exponent.
func (c *schemaCompiler) number(s map[string]any, intOnly bool) (string, error) {
	var lo, hi *big.Rat
	var loX, hiX bool // exclusive
	for _, kw := range []string{"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"} {
		v, ok := s[kw]
		if !ok {
			continue
		}
		r := toRat(v)
		if r == nil {
			return "", schemaErrf(kw, "%s must be a number of reasonable magnitude", kw)
		}
		if r.Num().BitLen() > 1000 || r.Denom().BitLen() > 1000 {
			return "", schemaErrf(kw, "unsupported JSON Schema keyword %q: bound too large", kw)
		}
		switch kw {
		case "minimum":
			if lo == nil || r.Cmp(lo) > 0 {
				lo, loX = r, false
			}
		case "exclusiveMinimum":
			if lo == nil || r.Cmp(lo) >= 0 {
				lo, loX = r, true
			}
		case "maximum":
			if hi == nil || r.Cmp(hi) < 0 {
				hi, hiX = r, false
			}
		case "exclusiveMaximum":
			if hi == nil || r.Cmp(hi) <= 0 {
				hi, hiX = r, true
			}
		}
	}
	if lo == nil && hi == nil {
		if intOnly {
			return "integer", nil
		}
		return "number", nil
	}
	if intOnly {
		// integer bounds: x >= ceil(lo) or floor(lo)+1; x <= floor(hi) or ceil(hi)-1
		var l, h *big.Int
		if lo != nil {
			l = ceilRat(lo)
			if loX && lo.IsInt() {
				l.Add(l, big.NewInt(1))
			}
		}
		if hi != nil {
			h = floorRat(hi)
			if hiX && hi.IsInt() {
				h.Sub(h, big.NewInt(1))
			}
		}
		return c.rule(intRangeExpr(l, h)), nil
	}
	e, ok := decRangeExpr(lo, loX, hi, hiX)
	if !ok {
		return "", schemaErrf("minimum", "unsupported JSON Schema keyword \"minimum\": number bounds %s and %s inside one unit interval with a non-integer or exclusive lower bound", lo.FloatString(3), hi.FloatString(3))
	}
	return c.rule(e), nil
}

func floorRat(r *big.Rat) *big.Int {
	q := new(big.Int)
	m := new(big.Int)
	q.DivMod(r.Num(), r.Denom(), m) // Euclidean: floor for positive denominators
	return q
}

func ceilRat(r *big.Rat) *big.Int {
	q := floorRat(r)
	if !r.IsInt() {
		q.Add(q, big.NewInt(1))
	}
	return q
}

var _ = strconv.Itoa
