package sample

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// cand is one surviving token.
type cand struct {
	id int32
	l  float32 // logit after bias and penalties (before temperature)
	p  float32 // probability within the set the current filter sees
	k  float32 // sort key of the current filter (smaller first)
}

// byLogitDesc orders by logit, highest first, ties to the lower id.
func byLogitDesc(a, b cand) int {
	if a.l != b.l {
		if a.l > b.l {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.id, b.id)
}

// byKey orders by key, smallest first, ties to the lower id.
func byKey(a, b cand) int {
	if a.k != b.k {
		if a.k < b.k {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.id, b.id)
}

// worse reports whether a ranks below b in top-k order.
func worse(a, b cand) bool {
	return a.l < b.l || (a.l == b.l && a.id > b.id)
}

// badLogit names the first NaN or +Inf logit, or reports that every logit
// is -Inf; it returns nil for valid logits.
func badLogit(logits []float32) error {
	for i, v := range logits {
		if v != v {
			return fmt.Errorf("sample: logit of token %d is NaN", i)
		}
	}
	for i, v := range logits {
		if math.IsInf(float64(v), 1) {
			return fmt.Errorf("sample: logit of token %d is +Inf", i)
		}
	}
	for _, v := range logits {
		if !math.IsInf(float64(v), -1) {
			return nil
		}
	}
	return fmt.Errorf("sample: every token's logit is -Inf (all %d tokens banned)", len(logits))
}

// diagnose is called when a fast path saw something wrong (a NaN or +Inf
// poisons a softmax; all -Inf leaves nothing) and names the bad logit.
func diagnose(logits []float32) error {
	if err := badLogit(logits); err != nil {
		return err
	}
	return fmt.Errorf("sample: internal error: logits look valid but no candidate survived")
}

// checkMax turns the maximum of a pass into an error when it is not finite.
func checkMax(logits []float32, m float32) error {
	if m != m || math.IsInf(float64(m), 0) {
		return diagnose(logits)
	}
	return nil
}

// scanBuf is the index batch of the scans; collectAbove needs >= 32.
const scanBuf = 256

// argmax is greedy decoding: one pass, the first maximum wins (ties go to
// the lowest id). A NaN anywhere, a +Inf maximum or all -Inf is an error.
func argmax(logits []float32) (int32, error) {
	m := logits[0]
	if m != m {
		return 0, diagnose(logits)
	}
	idx := 0
	var buf [scanBuf]int32
	for pos := 1; pos < len(logits); {
		got, next := collectAbove(logits[pos:], m, buf[:0])
		for _, j := range got {
			v := logits[pos+int(j)]
			if v != v {
				return 0, diagnose(logits)
			}
			if v > m {
				m, idx = v, pos+int(j)
			}
		}
		pos += next
	}
	if err := checkMax(logits, m); err != nil {
		return 0, err
	}
	return int32(idx), nil
}

// topK selects the k best logits (k < len(logits)) with a min-heap whose
// root is the worst kept token, in one pass. Scanning ids in increasing
// order and replacing the root only on a strictly greater logit gives ties
// to the lower id. The result is sorted best first.
func topK(logits []float32, k int, h []cand) ([]cand, error) {
	h = h[:0]
	for i := 0; i < k; i++ {
		v := logits[i]
		if v != v {
			return nil, diagnose(logits)
		}
		h = append(h, cand{id: int32(i), l: v})
		heapUp(h, len(h)-1)
	}
	root := h[0].l
	var buf [scanBuf]int32
	for pos := k; pos < len(logits); {
		got, next := collectAbove(logits[pos:], root, buf[:0])
		for _, j := range got {
			i := pos + int(j)
			v := logits[i]
			if v != v {
				return nil, diagnose(logits)
			}
			if v > root {
				h[0] = cand{id: int32(i), l: v}
				heapDown(h, 0)
				root = h[0].l
			}
		}
		pos += next
	}
	slices.SortFunc(h, byLogitDesc)
	if err := checkMax(logits, h[0].l); err != nil {
		return nil, err
	}
	return h, nil
}

func heapUp(h []cand, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !worse(h[i], h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func heapDown(h []cand, i int) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && worse(h[c+1], h[c]) {
			c++
		}
		if !worse(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// minPFull applies min-p to the whole vocabulary in one pass: it keeps a
// running maximum and collects every logit at or above running max +
// ln(minP), then drops the ones below the final threshold (the threshold
// only rises, so nothing that belongs is missed). -Inf logits are never
// collected: they could only be kept if every logit were -Inf, an error.
func minPFull(logits []float32, lnp float32, out []cand) ([]cand, error) {
	m := logits[0]
	if m != m {
		return nil, diagnose(logits)
	}
	out = out[:0]
	if !math.IsInf(float64(m), -1) {
		out = append(out, cand{id: 0, l: m})
	}
	thr := m + lnp
	var buf [scanBuf]int32
	for pos := 1; pos < len(logits); {
		// v >= thr is v > the float below thr (v > -Inf when thr is -Inf).
		got, next := collectAbove(logits[pos:], math.Nextafter32(thr, float32(math.Inf(-1))), buf[:0])
		for _, j := range got {
			i := pos + int(j)
			v := logits[i]
			if v != v {
				return nil, diagnose(logits)
			}
			if v >= thr && !math.IsInf(float64(v), -1) {
				if v > m {
					m = v
					thr = m + lnp
				}
				out = append(out, cand{id: int32(i), l: v})
			}
		}
		pos += next
	}
	if err := checkMax(logits, m); err != nil {
		return nil, err
	}
	j := 0
	for _, c := range out {
		if c.l >= thr {
			out[j] = c
			j++
		}
	}
	return out[:j], nil
}

// minPCands applies min-p to an explicit set: keep logits >= max+ln(minP),
// and at least minKeep tokens (the best ones) if fewer pass.
func minPCands(c []cand, lnp float32, minKeep int) []cand {
	m := c[0].l
	for _, x := range c {
		m = max(m, x.l)
	}
	thr := m + lnp
	j := 0
	for _, x := range c {
		if x.l >= thr {
			j++
		}
	}
	if j < minKeep {
		slices.SortFunc(c, byLogitDesc)
		return c[:min(minKeep, len(c))]
	}
	j = 0
	for _, x := range c {
		if x.l >= thr {
			c[j] = x
			j++
		}
	}
	return c[:j]
}

// weightsOf writes to buf the weights exp32((l-m)*scale) of the set's
// logits, m being the set's largest logit, and returns buf.
func weightsOf(c []cand, scale float32, buf []float32) []float32 {
	buf = slices.Grow(buf[:0], len(c))[:len(c)]
	m := c[0].l
	for i, x := range c {
		m = max(m, x.l)
		buf[i] = x.l
	}
	expShift(buf, m, scale, buf)
	return buf
}

// probsOf fills c[i].p with the set's probabilities at temperature 1: the
// weights over their float64 sum.
func probsOf(c []cand, buf []float32) []float32 {
	buf = weightsOf(c, 1, buf)
	z := 0.0
	for _, w := range buf {
		z += float64(w)
	}
	for i, w := range buf {
		c[i].p = float32(float64(w) / z)
	}
	return buf
}

// massPrefix reorders c so that its first n elements are the shortest
// prefix in key order (ties to the lower id) whose probability mass reaches
// target (cum >= target, or cum > target when strict) with at least minKeep
// elements, and returns n. Small sets are sorted;
// larger ones are bucketed by key first, so only the bucket where the mass
// crosses the target is sorted; sums are float64. Keys are finite or +Inf.
func massPrefix(c []cand, target float64, strict bool, minKeep int, sc *scratch) int {
	minKeep = max(minKeep, 1)
	reached := func(cum float64, count int) bool {
		if count < minKeep {
			return false
		}
		if strict {
			return cum > target
		}
		return cum >= target
	}
	scan := func(c []cand, cum float64, before int) int {
		for i, x := range c {
			cum += float64(x.p)
			if reached(cum, before+i+1) {
				return before + i + 1
			}
		}
		return before + len(c)
	}
	n := len(c)
	if n <= 512 {
		slices.SortFunc(c, byKey)
		return scan(c, 0, 0)
	}
	// The range of the finite keys; +Inf keys (the -Inf logits of top-p,
	// probability 0) go to the last bucket.
	kmin, kmax := float32(math.MaxFloat32), float32(-math.MaxFloat32)
	for _, x := range c {
		if !math.IsInf(float64(x.k), 0) {
			kmin = min(kmin, x.k)
			kmax = max(kmax, x.k)
		}
	}
	if !(kmax > kmin) {
		slices.SortFunc(c, byKey)
		return scan(c, 0, 0)
	}
	const nb = 1024
	var count [nb]int
	var mass [nb]float64
	scale := nb / (float64(kmax) - float64(kmin))
	bidx := slices.Grow(sc.bidx[:0], n)[:n]
	sc.bidx = bidx
	for i, x := range c {
		b := nb - 1
		if x.k < kmax {
			b = min(max(int((float64(x.k)-float64(kmin))*scale), 0), nb-1)
		}
		bidx[i] = uint16(b)
		count[b]++
		mass[b] += float64(x.p)
	}
	cum, cnt, cross := 0.0, 0, -1
	for b := 0; b < nb; b++ {
		cum += mass[b]
		cnt += count[b]
		if reached(cum, cnt) {
			cross = b
			break
		}
	}
	if cross < 0 {
		return n
	}
	out := slices.Grow(sc.c2[:0], n)
	for i, x := range c {
		if int(bidx[i]) < cross {
			out = append(out, x)
		}
	}
	before := len(out)
	for i, x := range c {
		if int(bidx[i]) == cross {
			out = append(out, x)
		}
	}
	sc.c2 = out
	copy(c, out)
	mid := c[before:len(out)]
	slices.SortFunc(mid, byKey)
	cum = 0
	for _, x := range c[:before] {
		cum += float64(x.p)
	}
	return scan(mid, cum, before)
}

// sortByID sorts candidates by token id: a small set with slices.SortFunc,
// a large one with an 11-bit LSD radix sort (ids are unique and < 2^31).
func sortByID(c []cand, sc *scratch) {
	if len(c) <= 256 {
		slices.SortFunc(c, func(a, b cand) int { return cmp.Compare(a.id, b.id) })
		return
	}
	maxID := int32(0)
	for _, x := range c {
		maxID = max(maxID, x.id)
	}
	tmp := slices.Grow(sc.c2[:0], len(c))[:len(c)]
	sc.c2 = tmp
	src, dst := c, tmp
	for shift := uint(0); shift < 31 && (shift == 0 || maxID>>shift != 0); shift += 11 {
		var cnt [2048 + 1]int
		for _, x := range src {
			cnt[(x.id>>shift)&2047+1]++
		}
		for i := 1; i < len(cnt); i++ {
			cnt[i] += cnt[i-1]
		}
		for _, x := range src {
			d := (x.id >> shift) & 2047
			dst[cnt[d]] = x
			cnt[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &c[0] {
		copy(c, src)
	}
}

// pickBlock is the block size of the draw (see choose).
const pickBlock = 256

// choose is the final draw. The weights of the survivors, in id order, are
// grouped in blocks of pickBlock; sums holds the block masses (blockMass)
// and total their sequential sum. The first block of positive mass whose
// running mass reaches target = u*total is entered; in it the first
// positive weight whose running float64 sum (continuing from the mass
// before the block) reaches the target is chosen, or the block's last
// positive weight if rounding leaves the block short. block(b) returns the
// weights of block b. It returns -1 when total is not positive and finite.
func choose(sums []float64, total, u float64, block func(b int) []float32) int {
	if !(total > 0) || math.IsInf(total, 0) {
		return -1
	}
	target := u * total
	cum := 0.0
	for b, bm := range sums {
		if bm > 0 && cum+bm >= target {
			last := -1
			for i, w := range block(b) {
				if w > 0 {
					cum += float64(w)
					last = b*pickBlock + i
					if cum >= target {
						break
					}
				}
			}
			return last
		}
		cum += bm
	}
	return -1 // unreachable: the running mass ends at total > target
}

// pick draws from explicit weights w (see choose). sums is scratch.
func pick(w []float32, u float64, sums []float64) (int, []float64) {
	nb := (len(w) + pickBlock - 1) / pickBlock
	sums = slices.Grow(sums[:0], nb)[:nb]
	total := 0.0
	for b := range nb {
		sums[b] = blockMass(w[b*pickBlock : min(len(w), (b+1)*pickBlock)])
		total += sums[b]
	}
	return choose(sums, total, u, func(b int) []float32 {
		return w[b*pickBlock : min(len(w), (b+1)*pickBlock)]
	}), sums
}

// pickFull draws from the weights exp32((l-m)*scale) of the whole
// vocabulary without storing them: the same result as pick on them, since
// sumExpBlocks gives the same block masses and a block's weights are
// recomputed bit for bit when it is entered.
func pickFull(logits []float32, m, scale float32, u float64, sums []float64) (int, []float64) {
	nb := (len(logits) + pickBlock - 1) / pickBlock
	sums = slices.Grow(sums[:0], nb)[:nb]
	total := sumExpBlocks(logits, m, scale, sums)
	var w [pickBlock]float32
	return choose(sums, total, u, func(b int) []float32 {
		blk := logits[b*pickBlock : min(len(logits), (b+1)*pickBlock)]
		expShift(blk, m, scale, w[:len(blk)])
		return w[:len(blk)]
	}), sums
}
