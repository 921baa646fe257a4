package grammar

import (
	"fmt"
	"math/big"
	"strings"
)

// Exact digit-range grammars for integers and for decimals with integer
// bounds. Text is canonical: no leading zeros, no "+", no exponent.

var (
	bigOne  = big.NewInt(1)
	bigZero = big.NewInt(0)
)

// uintRange is a GBNF expression for the decimal texts of the integers in
// [a, b] (a >= 0; b nil = unbounded), or "" when the range is empty.
func uintRange(a, b *big.Int) string {
	if b != nil && a.Cmp(b) > 0 {
		return ""
	}
	as := a.String()
	var alts []string
	if b == nil {
		// same length as a, then every longer number
		top := new(big.Int).Sub(pow10(len(as)), bigOne)
		if a.Sign() == 0 {
			alts = append(alts, `"0"`)
			a = bigOne
			as = "1"
		}
		alts = append(alts, sameLen(as, top.String()))
		alts = append(alts, fmt.Sprintf(`[1-9] [0-9]{%d,}`, len(as)))
		return "( " + strings.Join(alts, " | ") + " )"
	}
	bs := b.String()
	for l := len(as); l <= len(bs); l++ {
		lo := as
		if l > len(as) {
			lo = pow10(l - 1).String()
		}
		hi := bs
		if l < len(bs) {
			hi = new(big.Int).Sub(pow10(l), bigOne).String()
		}
		alts = append(alts, sameLen(lo, hi))
	}
	return "( " + strings.Join(alts, " | ") + " )"
}

func pow10(n int) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// sameLen matches the digit strings s with lo <= s <= hi, all of one length.
func sameLen(lo, hi string) string {
	if lo == "" {
		return `""`
	}
	if lo[0] == hi[0] {
		rest := sameLen(lo[1:], hi[1:])
		if rest == `""` {
			return fmt.Sprintf(`"%c"`, lo[0])
		}
		return fmt.Sprintf(`"%c" %s`, lo[0], rest)
	}
	n := len(lo) - 1
	allZero := strings.Trim(lo[1:], "0") == ""
	allNine := strings.Trim(hi[1:], "9") == ""
	digits := func(n int) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf(" [0-9]{%d}", n)
	}
	var alts []string
	first, last := lo[0], hi[0]
	if !allZero {
		alts = append(alts, fmt.Sprintf(`"%c" ( %s )`, lo[0], sameLen(lo[1:], strings.Repeat("9", n))))
		first++
	}
	if !allNine {
		last--
	}
	if first <= last {
		alts = append(alts, fmt.Sprintf(`[%c-%c]%s`, first, last, digits(n)))
	}
	if !allNine {
		alts = append(alts, fmt.Sprintf(`"%c" ( %s )`, hi[0], sameLen(strings.Repeat("0", n), hi[1:])))
	}
	return "( " + strings.Join(alts, " | ") + " )"
}

// intRangeExpr matches canonical integers in [l, h] (nil = unbounded).
func intRangeExpr(l, h *big.Int) string {
	var alts []string
	// non-negative part [max(l,0), h]
	if h == nil || h.Sign() >= 0 {
		lo := bigZero
		if l != nil && l.Sign() > 0 {
			lo = l
		}
		if e := uintRange(lo, h); e != "" {
			alts = append(alts, e)
		}
	}
	// negative part: -y with y in [max(1,-h), -l]
	if l == nil || l.Sign() < 0 {
		lo := bigOne
		if h != nil && h.Sign() < 0 {
			lo = new(big.Int).Neg(h)
		}
		var hi *big.Int
		if l != nil {
			hi = new(big.Int).Neg(l)
		}
		if e := uintRange(lo, hi); e != "" {
			alts = append(alts, `"-" `+e)
		}
	}
	if len(alts) == 0 {
		return "nothing"
	}
	return strings.Join(alts, " | ")
}

// udecRange matches non-negative decimals y (integer part, optional
// fraction, no exponent) with lo <(=) y <(=) hi (lo >= 0; hi nil = no upper
// bound). Bounds are finite decimals. ok is false for the one shape it does
// not build: both bounds inside the same unit interval with a non-integer
// or exclusive lower bound.
func udecRange(lo *big.Rat, loX bool, hi *big.Rat, hiX bool) (alts []string, ok bool) {
	if hi != nil {
		if c := lo.Cmp(hi); c > 0 || c == 0 && (loX || hiX) {
			return nil, true
		}
	}
	il, dl := splitDecimal(lo)
	loInt := dl == ""
	var ih *big.Int
	var dh string
	if hi != nil {
		ih, dh = splitDecimal(hi)
	}
	fracAlt := func(i *big.Int, expr string, emptyOK bool) {
		switch {
		case expr != "" && emptyOK:
			alts = append(alts, fmt.Sprintf(`"%s" ( "." %s )?`, i, expr))
		case expr != "":
			alts = append(alts, fmt.Sprintf(`"%s" "." %s`, i, expr))
		case emptyOK:
			alts = append(alts, fmt.Sprintf(`"%s"`, i))
		}
	}
	if ih != nil && il.Cmp(ih) == 0 {
		if !loInt || loX {
			return nil, false
		}
		e, emptyOK := fracLE(dh, hiX)
		fracAlt(il, e, emptyOK)
		return alts, true
	}
	// A: integer part strictly inside, any fraction
	a := il
	if !loInt || loX {
		a = new(big.Int).Add(il, bigOne)
	}
	var b *big.Int
	if ih != nil {
		b = new(big.Int).Sub(ih, bigOne)
	}
	if e := uintRange(a, b); e != "" {
		alts = append(alts, e+` ( "." [0-9]+ )?`)
	}
	// B: integer part equal to lo's, fraction above lo's
	if !loInt || loX {
		e, emptyOK := fracGE(dl, loX)
		fracAlt(il, e, emptyOK)
	}
	// C: integer part equal to hi's, fraction up to hi's
	if ih != nil {
		e, emptyOK := fracLE(dh, hiX)
		fracAlt(ih, e, emptyOK)
	}
	return alts, true
}

// splitDecimal splits a non-negative finite decimal into its integer part
// and its fraction digits without trailing zeros.
func splitDecimal(r *big.Rat) (*big.Int, string) {
	i := floorRat(r)
	f := new(big.Rat).Sub(r, new(big.Rat).SetInt(i))
	var d []byte
	ten := big.NewRat(10, 1)
	for f.Sign() != 0 && len(d) < 1000 {
		f.Mul(f, ten)
		k := floorRat(f)
		d = append(d, byte('0'+k.Int64()))
		f.Sub(f, new(big.Rat).SetInt(k))
	}
	return i, string(d)
}

// fracGE matches non-empty fraction digit strings f with 0.f >= 0.d (> when
// strict); emptyOK says whether an absent fraction (value 0) does.
func fracGE(d string, strict bool) (string, bool) {
	if d == "" {
		if strict {
			return `[0-9]* [1-9] [0-9]*`, false
		}
		return `[0-9]+`, true
	}
	var alts []string
	if d[0] < '9' {
		alts = append(alts, fmt.Sprintf(`[%c-9] [0-9]*`, d[0]+1))
	}
	sub, subEmpty := fracGE(d[1:], strict)
	alts = appendDigit(alts, d[0], sub, subEmpty)
	return joinAlts(alts), false
}

// fracLE matches non-empty fraction digit strings f with 0.f <= 0.d (<
// when strict); an absent fraction is 0.
func fracLE(d string, strict bool) (string, bool) {
	if d == "" {
		if strict {
			return "", false
		}
		return `"0"+`, true
	}
	var alts []string
	if d[0] > '0' {
		alts = append(alts, fmt.Sprintf(`[0-%c] [0-9]*`, d[0]-1))
	}
	sub, subEmpty := fracLE(d[1:], strict)
	alts = appendDigit(alts, d[0], sub, subEmpty)
	return joinAlts(alts), true
}

func appendDigit(alts []string, c byte, sub string, subEmpty bool) []string {
	switch {
	case sub != "" && subEmpty:
		return append(alts, fmt.Sprintf(`"%c" ( %s )?`, c, sub))
	case sub != "":
		return append(alts, fmt.Sprintf(`"%c" %s`, c, sub))
	case subEmpty:
		return append(alts, fmt.Sprintf(`"%c"`, c))
	}
	return alts
}

func joinAlts(alts []string) string {
	if len(alts) == 0 {
		return ""
	}
	return "( " + strings.Join(alts, " | ") + " )"
}

// decRangeExpr matches decimals x (no exponent) with l <(=) x <(=) h.
func decRangeExpr(l *big.Rat, lX bool, h *big.Rat, hX bool) (string, bool) {
	var alts []string
	zero := new(big.Rat)
	// x >= 0 written without "-": y = x
	if h == nil || h.Sign() > 0 || h.Sign() == 0 && !hX {
		lo, loX := zero, false
		if l != nil && (l.Sign() > 0 || l.Sign() == 0 && lX) {
			lo, loX = l, lX
		}
		a, ok := udecRange(lo, loX, h, hX)
		if !ok {
			return "", false
		}
		alts = append(alts, a...)
	}
	// x <= 0 written with "-": y = -x, bounds swap
	if l == nil || l.Sign() < 0 || l.Sign() == 0 && !lX {
		lo, loX := zero, false
		if h != nil && (h.Sign() < 0 || h.Sign() == 0 && hX) {
			lo, loX = new(big.Rat).Neg(h), hX
		}
		var hi *big.Rat
		if l != nil {
			hi = new(big.Rat).Neg(l)
		}
		a, ok := udecRange(lo, loX, hi, lX)
		if !ok {
			return "", false
		}
		for _, e := range a {
			alts = append(alts, `"-" `+e)
		}
	}
	if len(alts) == 0 {
		return "nothing", true
	}
	return strings.Join(alts, " | "), true
}
