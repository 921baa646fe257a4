package noise

import (
	"container/list"
	"math"
	"strconv"
)

// Source makes a fresh generator for a seed, as
// torch.Generator(device).manual_seed(seed) does: NewPhilox for CUDA (A1111's
// default seed source), NewTorchCPU for the CPU (ComfyUI).
type Source func(seed uint64) Generator

// PhiloxSource and TorchCPUSource are the two torch generators as Sources.
var (
	PhiloxSource   Source = func(seed uint64) Generator { return NewPhilox(seed) }
	TorchCPUSource Source = func(seed uint64) Generator { return NewTorchCPU(seed) }
)

// BrownianTree is torchsde's BrownianTree (a BrownianInterval with a dyadic
// "halfway" tree, tolerance 1e-6 and entropy pool 24, no Lévy area), which
// k-diffusion's DPM++ SDE samplers draw their noise from. Its increments
// depend only on the entropy and the query times, never on the order of
// the queries, so they are reproduced here value for value.
//
// The construction: W over the whole interval [t0, t1] is one draw scaled
// by √(t1−t0). An interval that is split at its (rounded) midpoint m gets a
// seed from numpy's SeedSequence(entropy, spawn_key=(key, depth)); the
// left child's increment is the Brownian bridge
//
//	W_left = W·(m−s)/(e−s) + √((m−s)(e−m)/(e−s))·z,   W_right = W − W_left
//
// with z one draw from that seed. A query [ta, tb] is covered by tree nodes
// (splitting down to a resolution of 10⁻⁶) whose increments are summed
// from left to right. The arithmetic is float32 with float32 scalars, as
// torch does with a Python float times a float32 tensor.
type BrownianTree struct {
	n       int
	entropy uint64
	src     Source
	root    *interval

	rootW    []float32 // the whole interval's increment, always kept
	cache    map[*interval]*list.Element
	lru      *list.List
	maxCache int
}

// interval is a node of the dyadic tree.
type interval struct {
	start, end float64
	parent     *interval
	isLeft     bool

	split       bool
	midway      float64
	key         uint64
	depth       int
	wSeed       uint32
	left, right *interval
}

type cached struct {
	iv *interval
	w  []float32
}

const (
	brownianPool = 24 // torchsde BrownianTree's pool_size
	brownianTol  = 6  // digits: tol 1e-6 rounds times to 6 decimals
)

// roundTime is Python's round(x, 6): the correctly rounded decimal.
func roundTime(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', brownianTol, 64), 64)
	return v
}

// NewBrownianTree returns the tree over [t0, t1] (t0 < t1) for samples of n
// values; t0 and t1 are the float32 times k-diffusion passes.
func NewBrownianTree(t0, t1 float32, n int, entropy uint64, src Source) *BrownianTree {
	b := &BrownianTree{n: n, entropy: entropy, src: src, cache: map[*interval]*list.Element{}, lru: list.New(), maxCache: 48}
	b.root = &interval{start: roundTime(float64(t0)), end: roundTime(float64(t1))}
	seeds := newSeedSequence(entropy, nil, brownianPool).generateState(3)
	w := src(uint64(seeds[0])).Randn(n)
	// W is drawn with the unrounded times.
	scale := float32(math.Sqrt(float64(t1) - float64(t0)))
	for i := range w {
		w[i] *= scale
	}
	b.rootW = w
	return b
}

// Increment returns W(tb) − W(ta) for ta ≤ tb, with the times clamped to
// the tree's interval as torchsde does.
func (b *BrownianTree) Increment(ta, tb float64) []float32 {
	ta = min(max(ta, b.root.start), b.root.end)
	tb = min(max(tb, b.root.start), b.root.end)
	if ta == tb {
		return make([]float32, b.n)
	}
	ta, tb = roundTime(ta), roundTime(tb)
	if ta == tb {
		return make([]float32, b.n)
	}
	var cover []*interval
	b.locate(b.root, ta, tb, &cover)
	out := append([]float32(nil), b.w(cover[0])...)
	for _, iv := range cover[1:] {
		wi := b.w(iv)
		for i := range out {
			out[i] += wi[i]
		}
	}
	return out
}

// locate appends the nodes that exactly cover [ta, tb] within iv, left to
// right, splitting nodes as needed.
func (b *BrownianTree) locate(iv *interval, ta, tb float64, out *[]*interval) {
	for {
		if ta == iv.start && tb == iv.end {
			*out = append(*out, iv)
			return
		}
		if !iv.split {
			p := ta
			if ta == iv.start {
				p = tb
			}
			b.splitToward(iv, p)
		}
		switch {
		case tb <= iv.midway:
			iv = iv.left
		case ta >= iv.midway:
			iv = iv.right
		default:
			b.locate(iv.left, ta, iv.midway, out)
			ta, iv = iv.midway, iv.right
		}
	}
}

// splitToward splits iv at its rounded midpoint and keeps splitting the
// child that holds p until p is a split point.
func (b *BrownianTree) splitToward(iv *interval, p float64) {
	for {
		b.splitAt(iv, roundTime(0.5*(iv.end+iv.start)))
		switch {
		case p > iv.midway:
			iv = iv.right
		case p < iv.midway:
			iv = iv.left
		default:
			return
		}
	}
}

func (b *BrownianTree) splitAt(iv *interval, mid float64) {
	if iv.parent != nil {
		bit := uint64(1)
		if iv.isLeft {
			bit = 0
		}
		iv.key, iv.depth = 2*iv.parent.key+bit, iv.parent.depth+1
	}
	iv.midway = mid
	iv.split = true
	iv.wSeed = newSeedSequence(b.entropy, []uint64{iv.key, uint64(iv.depth)}, brownianPool).generateState(4)[0]
	iv.left = &interval{start: iv.start, end: mid, parent: iv, isLeft: true}
	iv.right = &interval{start: mid, end: iv.end, parent: iv}
}

// w returns the node's increment, computing it (and its uncached
// ancestors) from the nearest cached ancestor.
func (b *BrownianTree) w(iv *interval) []float32 {
	if w := b.get(iv); w != nil {
		return w
	}
	var path []*interval
	w := []float32(nil)
	for p := iv; ; p = p.parent {
		if w = b.get(p); w != nil {
			break
		}
		path = append(path, p)
	}
	for i := len(path) - 1; i >= 0; i-- {
		c := path[i]
		w = b.child(c.parent, w, c.isLeft)
		b.put(c, w)
	}
	return w
}

// child is the Brownian bridge step from a parent's increment to one
// child's, in torch's float32 order.
func (b *BrownianTree) child(p *interval, w []float32, left bool) []float32 {
	hRecip := 1 / (p.end - p.start)
	ld, rd := p.midway-p.start, p.end-p.midway
	v := ld * rd * hRecip
	a, c, s := float32(ld), float32(hRecip), float32(math.Sqrt(v))
	z := b.src(uint64(p.wSeed)).Randn(b.n)
	out := make([]float32, b.n)
	for i, wi := range w {
		m := float32(wi * a)
		m = float32(m * c)
		lw := m + float32(z[i]*s)
		if left {
			out[i] = lw
		} else {
			out[i] = wi - lw
		}
	}
	return out
}

func (b *BrownianTree) get(iv *interval) []float32 {
	if iv == b.root {
		return b.rootW
	}
	if e, ok := b.cache[iv]; ok {
		b.lru.MoveToFront(e)
		return e.Value.(*cached).w
	}
	return nil
}

// put caches a node's increment, evicting the least recently used one
// when the cache is full (values never depend on what is cached).
func (b *BrownianTree) put(iv *interval, w []float32) {
	if b.lru.Len() >= b.maxCache {
		old := b.lru.Back()
		delete(b.cache, old.Value.(*cached).iv)
		b.lru.Remove(old)
	}
	b.cache[iv] = b.lru.PushFront(&cached{iv: iv, w: w})
}

// BrownianNoise is k-diffusion's BrownianTreeNoiseSampler with the identity
// transform, over a batch of images: with one seed per image (A1111) each
// image has its own tree with that seed as entropy; with a single seed
// (ComfyUI) one tree spans the whole batch.
type BrownianNoise struct {
	trees []*BrownianTree
	per   int
}

// NewBrownianNoise builds the noise for a batch of len(seeds) images of
// perImage values each, or, with one seed and images > 1, one tree over
// images·perImage values. sigmaMin and sigmaMax are the smallest non-zero
// and the largest sigma of the schedule.
func NewBrownianNoise(sigmaMin, sigmaMax float32, perImage, images int, seeds []uint64, src Source) *BrownianNoise {
	t0, t1 := min(sigmaMin, sigmaMax), max(sigmaMin, sigmaMax)
	if len(seeds) == 1 && images > 1 {
		return &BrownianNoise{trees: []*BrownianTree{NewBrownianTree(t0, t1, perImage*images, seeds[0], src)}, per: perImage * images}
	}
	bn := &BrownianNoise{per: perImage}
	for _, s := range seeds {
		bn.trees = append(bn.trees, NewBrownianTree(t0, t1, perImage, s, src))
	}
	return bn
}

// Noise returns the standard-normal noise for the step σ → σ_next:
// (W(σ_next) − W(σ)) / √|σ_next − σ|, concatenated over the trees.
func (bn *BrownianNoise) Noise(sigma, sigmaNext float32) []float32 {
	a, c, neg := sigma, sigmaNext, true
	if sigma < sigmaNext {
		neg = false
	} else {
		a, c = sigmaNext, sigma
	}
	d := sigmaNext - sigma
	div := float32(math.Sqrt(float64(float32(math.Abs(float64(d))))))
	out := make([]float32, 0, len(bn.trees)*bn.per)
	for _, t := range bn.trees {
		w := t.Increment(float64(a), float64(c))
		for _, v := range w {
			if neg {
				v = -v
			}
			out = append(out, v/div)
		}
	}
	return out
}
