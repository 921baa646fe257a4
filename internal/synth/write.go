package synth

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sync"

	"mica/internal/format/gguf"
	"mica/internal/kernels/quant"
	"mica/internal/tensor"
)

// Write generates the preset's file at path, tensor by tensor, in row
// chunks computed by Options.Threads goroutines and written in order: the
// model is never held in memory (a few chunks of about 4 MiB per thread
// are). The file appears under its name only when complete.
func Write(path string, o Options) (*Layout, error) {
	if o.Vocab == nil {
		return nil, ErrNoVocab
	}
	l, err := Plan(o)
	if err != nil {
		return nil, err
	}
	threads := max(o.Threads, 1)
	g := &generator{l: l, seed: o.Seed, threads: threads, pools: map[tensor.DType][]byte{}}
	if l.pool {
		for i, t := range l.Tensors {
			if t.Type.Quantized() && l.specs[i].dist == distMatrix {
				if err := g.buildPool(t.Type); err != nil {
					return nil, err
				}
			}
		}
	}
	w, err := gguf.Create(path, 3, 0, l.Meta, l.Tensors)
	if err != nil {
		return nil, err
	}
	if err := g.stream(w, o.Progress); err != nil {
		w.Abort()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return l, nil
}

// generator computes tensor data; every value depends only on the seed, the
// tensor's name and the value's index, so chunks can be computed in any
// order on any number of threads and the file is always the same.
type generator struct {
	l       *Layout
	seed    uint64
	threads int
	pools   map[tensor.DType][]byte
}

const (
	chunkElems = 1 << 20 // values per work item (4 MiB as float32)
	poolBlocks = 16384   // blocks in a BlocksPool pool
	golden     = 0x9e3779b97f4a7c15
	sqrt3      = 1.7320508075688772
)

// mix64 is SplitMix64's output function: a bijective scramble of a counter.
func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	return z ^ z>>31
}

// streamKey is the random stream of one named tensor.
func streamKey(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return mix64(seed ^ mix64(h.Sum64()))
}

// normal is value i of stream key, approximately N(0, 1): the sum of four
// 16-bit uniforms (Irwin–Hall), centred and scaled to unit variance. It is
// bounded by ±3.46, which suits random weights and costs one hash.
func normal(key, i uint64) float32 {
	r := mix64(key + (i+1)*golden)
	s := r&0xffff + r>>16&0xffff + r>>32&0xffff + r>>48
	return float32(((float64(s)+2)/65536 - 2) * sqrt3)
}

// uniform is value i of stream key in [0, 1).
func uniform(key, i uint64) float64 {
	return float64(mix64(key+(i+1)*golden)>>11) / (1 << 53)
}

// fill writes values [e0, e0+len(dst)) of tensor ti into dst.
func (g *generator) fill(ti int, e0 int64, dst []float32) {
	s := g.l.specs[ti]
	key := streamKey(g.seed, g.l.Tensors[ti].Name)
	for j := range dst {
		i := uint64(e0) + uint64(j)
		switch s.dist {
		case distMatrix:
			dst[j] = matrixSD * normal(key, i)
		case distNorm:
			dst[j] = s.scale * (1 + normSD*normal(key, i))
		case distLayerScale:
			dst[j] = float32(0.3 + 0.7*uniform(key, i))
		case distRopeFreqs:
			dst[j] = 1
			if int(i) >= s.rot {
				dst[j] = 1e30
			}
		}
	}
}

// buildPool quantizes poolBlocks blocks of random matrix values to type t.
func (g *generator) buildPool(t tensor.DType) error {
	if _, ok := g.pools[t]; ok {
		return nil
	}
	bs := t.BlockSize()
	per := (poolBlocks + g.threads - 1) / g.threads
	pool := make([]byte, poolBlocks*t.TypeSize())
	key := streamKey(g.seed, "pool:"+t.String())
	var wg sync.WaitGroup
	errs := make([]error, g.threads)
	for w := 0; w < g.threads; w++ {
		b0, b1 := w*per, min((w+1)*per, poolBlocks)
		if b0 >= b1 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals := make([]float32, (b1-b0)*bs)
			for j := range vals {
				vals[j] = matrixSD * normal(key, uint64(b0*bs+j))
			}
			errs[w] = quant.Quantize(t, vals, pool[b0*t.TypeSize():b1*t.TypeSize()])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("synth: block pool %s: %w", t, err)
		}
	}
	g.pools[t] = pool
	return nil
}

// chunk computes rows [r0, r1) of tensor ti in its storage type.
func (g *generator) chunk(ti int, r0, r1 int64) ([]byte, error) {
	t := g.l.Tensors[ti]
	ne0 := t.Shape[0]
	rowBytes, _ := t.Type.RowBytes(ne0)
	out := make([]byte, (r1-r0)*rowBytes)
	if pool, ok := g.pools[t.Type]; ok && g.l.specs[ti].dist == distMatrix {
		ts := int64(t.Type.TypeSize())
		key := streamKey(g.seed, t.Name)
		blocksPerRow := ne0 / int64(t.Type.BlockSize())
		b0 := r0 * blocksPerRow
		for j := int64(0); j*ts < int64(len(out)); j++ {
			k := int64(mix64(key+uint64(b0+j+1)*golden) % poolBlocks)
			copy(out[j*ts:(j+1)*ts], pool[k*ts:(k+1)*ts])
		}
		return out, nil
	}
	vals := make([]float32, (r1-r0)*ne0)
	g.fill(ti, r0*ne0, vals)
	if t.Type == tensor.F32 {
		for j, v := range vals {
			binary.LittleEndian.PutUint32(out[4*j:], math.Float32bits(v))
		}
		return out, nil
	}
	if err := quant.Quantize(t.Type, vals, out); err != nil {
		return nil, fmt.Errorf("synth: tensor %s: %w", t.Name, err)
	}
	return out, nil
}

type work struct {
	ti     int
	r0, r1 int64
	done   chan result
}

type result struct {
	b   []byte
	err error
}

// stream computes every chunk on g.threads workers, at most 2 per thread
// ahead of the writer, and writes them in order.
func (g *generator) stream(w *gguf.Writer, progress func(done, total int64)) error {
	quit := make(chan struct{})
	defer close(quit)
	todo := make(chan *work)
	order := make(chan *work, 2*g.threads)
	go func() { // producer
		defer close(todo)
		defer close(order)
		for ti, t := range g.l.Tensors {
			rows := t.Elements() / t.Shape[0]
			step := max(1, chunkElems/t.Shape[0])
			for r0 := int64(0); r0 < rows; r0 += step {
				job := &work{ti: ti, r0: r0, r1: min(r0+step, rows), done: make(chan result, 1)}
				select {
				case order <- job:
				case <-quit:
					return
				}
				select {
				case todo <- job:
				case <-quit:
					return
				}
			}
		}
	}()
	for i := 0; i < g.threads; i++ {
		go func() {
			for job := range todo {
				b, err := g.chunk(job.ti, job.r0, job.r1)
				job.done <- result{b, err}
			}
		}()
	}
	var written int64
	for ti, t := range g.l.Tensors {
		r := &chunkReader{order: order, ti: ti, progress: func(n int) {
			written += int64(n)
			if progress != nil {
				progress(written, g.l.Bytes)
			}
		}}
		if err := w.WriteTensorFrom(t.Name, r); err != nil {
			if r.err != nil {
				return r.err
			}
			return err
		}
	}
	return nil
}

// chunkReader reads one tensor's chunks in order.
type chunkReader struct {
	order    <-chan *work
	ti       int
	cur      []byte
	err      error
	progress func(int)
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(r.cur) == 0 {
		job, ok := <-r.order
		if !ok || job.ti != r.ti {
			r.err = fmt.Errorf("synth: internal error: chunk order (tensor %d)", r.ti)
			return 0, r.err
		}
		res := <-job.done
		if res.err != nil {
			r.err = res.err
			return 0, r.err
		}
		r.cur = res.b
		r.progress(len(res.b))
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

var _ io.Reader = (*chunkReader)(nil)
