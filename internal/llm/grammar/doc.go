// Package grammar constrains generation to a formal language: it compiles
// llama.cpp-style GBNF grammars and a subset of JSON Schema into a byte-level
// pushdown automaton, and turns automaton states into token masks over a
// model vocabulary.
//
// # How it works
//
// GBNF text (llama.cpp's dialect: `name ::= alternatives`, "literals" with
// \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH escapes, [classes] and [^negated]
// classes over code points, `.`, (groups), * + ? {m} {m,} {m,n}, # comments,
// a `root` rule) is parsed into rules whose elements are byte sets and rule
// references: character classes with non-ASCII ranges become alternatives
// of UTF-8 byte-range sequences, so matching is byte-level and a token may
// end in the middle of a character. Malformed grammars fail with a
// SyntaxError carrying line and column; left recursion and repetition of an
// empty item are refused.
//
// The matcher is a pushdown automaton run on sets of parse stacks (interned
// linked lists; tail calls push no frame, so `x*` does not grow the stack).
// Sets of stacks are interned into numbered states and byte transitions
// between them are memoised, which lazily determinises the automaton into a
// DFA over the states actually reached. States hold only a state number, so
// Clone is a copy.
//
// Token masks: Vocab is a byte trie over every token's decoded bytes in
// preorder. A mask is one walk of the trie in lock-step with the DFA that
// skips a subtree as soon as its prefix is rejected, and takes a subtree
// whole when a per-node summary (byte classes and longest character count
// of the suffixes below it) shows every token in it is accepted: inside a
// free string every ordinary character loops back to the same state, and
// inside a bounded string each character moves one step along a chain of
// counter states. Masks are cached per DFA state (up to 512 per Grammar
// and Vocab), so repeated states cost one copy. The DFA and the cache live
// in the Grammar and are shared by its States under a mutex: callers should
// reuse one Grammar per distinct grammar or schema (e.g. cache by text).
// End-of-generation tokens are allowed exactly when the grammar can end;
// control, unknown, unused and user-defined tokens (Gemma's <unusedN>) and
// tokens with no bytes never are.
//
// JSON Schema (draft 2020-12 subset) compiles to GBNF (SchemaToGBNF) and
// then as above. Policy:
//
//   - Output is compact JSON: no whitespace between tokens. (Unbounded
//     whitespace would let a random model loop forever.)
//   - Object members appear in sorted key order (the order of Go's
//     encoding/json for maps). Declared properties are matched by their
//     canonical encoding; additional properties (allowed unless
//     additionalProperties is false, validated by its schema) may appear
//     between them in any order and must not spell a declared key in
//     canonical form. An escaped spelling of a declared key (e.g. "\u0061"
//     for "a") is not recognised as that key.
//   - enum/const values match their canonical text (encoding/json of the
//     value, numbers as float64, no HTML escaping); values that fail the
//     schema's other keywords are dropped.
//   - Numbers: bounds (minimum, maximum, exclusive*) are exact digit
//     automata. For type integer any bound works. For type number, bounded
//     numbers are written without an exponent (so 1e2 is rejected though
//     valid); the one refused shape is a lower and upper bound inside the
//     same unit interval with a non-integer or exclusive lower bound (e.g.
//     minimum 0.5 with maximum 0.7), refused naming "minimum".
//   - Strings: minLength/maxLength count characters, an escape counts as one
//     (a surrogate pair written as two \u escapes counts as two). pattern
//     supports an ECMAScript subset (literals, escapes, ., classes, \d \w \s
//     and negations, groups, (?:), |, ? * + {n} {n,} {n,m}, ^ and $ only at
//     the ends); other constructs (\b, \p{..}, lookaround, backreferences)
//     are refused. Characters the pattern matches are written raw, or as
//     their canonical escape when JSON requires one. pattern cannot be
//     combined with minLength/maxLength or format (refused).
//   - format is asserted for date, time, date-time (RFC 3339; day-of-month
//     not checked against the month), uuid, ipv4 and email (a simple
//     dot-atom local part and a domain of DNS labels); other formats are
//     refused. (The specification makes format an annotation by default;
//     for generation we enforce it.)
//   - anyOf is exact. oneOf is compiled as anyOf: an instance matching more
//     than one branch is accepted although invalid. allOf, and $ref with
//     sibling keywords, are merged into one schema where the keywords can be
//     merged (type, properties/additionalProperties, required, enum/const,
//     bounds, items/prefixItems, anyOf/oneOf by cross product up to 64
//     branches, equal pattern/format); otherwise refused.
//   - $ref: local JSON pointers ("#", "#/$defs/x", ~0 ~1 and %-escapes),
//     recursion allowed. Remote references, anchors and $id below the root
//     are refused. $schema/$vocabulary are ignored.
//   - Refused by name: not, if/then/else, dependentRequired,
//     dependentSchemas, contains, minContains, maxContains, uniqueItems,
//     multipleOf, minProperties, maxProperties, propertyNames,
//     patternProperties, unevaluatedItems, unevaluatedProperties,
//     $dynamicRef, $dynamicAnchor, $anchor, additionalItems, dependencies.
//     Unknown non-standard keywords are ignored, as the specification says.
//   - minLength/maxLength/minItems/maxItems above 1024 are refused.
package grammar
