// Package cpu is mica's CPU backend: tensors are Go byte slices (or wrapped
// memory-mapped weights), ops run on the kernels of package kernels, split
// over one persistent worker pool by rows, so results are identical at any
// thread count.
package cpu

import (
	"fmt"
	"sync"
	"unsafe"

	"mica/internal/compute"
	"mica/internal/kernels/matmul"
	"mica/internal/tensor"
)

// Backend is the CPU implementation of compute.Backend.
type Backend struct {
	pool *Pool

	mu    sync.Mutex
	stats compute.MemStats
	// free keeps freed buffers by exact size for the next Alloc of that
	// size: a decode step allocates the same temporaries every time, and
	// fresh Go allocations of them kept the garbage collector busy (12% of
	// a batched decode run's CPU). Bounded by freeCap bytes in all.
	free      map[int64][][]byte
	freeBytes int64

	scratchMu sync.Mutex
	scratch   []byte // reused for quantized activations, im2col, …
	// RoPE tables kept for the next calls (run.go, ropeTable); guarded
	// by scratchMu like scratch.
	ropes    [4]ropeEntry
	nextRope int
}

// storage is a tensor's bytes.
type storage struct{ data []byte }

// New returns a CPU backend running on threads threads (<= 0: all cores).
func New(threads int) *Backend {
	return &Backend{pool: NewPool(threads)}
}

// Name reports the backend and the instruction set its kernels use.
func (b *Backend) Name() string { return "cpu/" + matmul.ISA() }

// Threads is the size of the worker pool.
func (b *Backend) Threads() int { return b.pool.Threads() }

// Pool exposes the worker pool (benchmarks use it to split work the same way).
func (b *Backend) Pool() *Pool { return b.pool }

func byteSize(dt tensor.DType, shape []int) (int64, error) {
	if !dt.Supported() {
		return 0, fmt.Errorf("cpu: data type %s is not supported", dt)
	}
	if len(shape) == 0 {
		return 0, fmt.Errorf("cpu: tensor needs at least one dimension")
	}
	n := int64(1)
	for _, d := range shape {
		if d <= 0 {
			return 0, fmt.Errorf("cpu: dimension %d in shape %v", d, shape)
		}
		n *= int64(d)
		if n > 1<<40 {
			return 0, fmt.Errorf("cpu: shape %v is too large", shape)
		}
	}
	rowLen := int64(shape[len(shape)-1])
	rb, ok := dt.RowBytes(rowLen)
	if !ok {
		return 0, fmt.Errorf("cpu: row of %d elements is not a whole number of %s blocks (%d)", rowLen, dt, dt.BlockSize())
	}
	return rb * (n / rowLen), nil
}

// Alloc returns a zeroed contiguous tensor.
func (b *Backend) Alloc(dt tensor.DType, shape ...int) (*compute.Tensor, error) {
	return b.alloc(true, dt, shape)
}

// AllocUninit returns a contiguous tensor whose contents are whatever its
// memory last held (a buffer from the reuse cache is not cleared), for an
// op's output that the op writes in full.
func (b *Backend) AllocUninit(dt tensor.DType, shape ...int) (*compute.Tensor, error) {
	return b.alloc(false, dt, shape)
}

func (b *Backend) alloc(zero bool, dt tensor.DType, shape []int) (*compute.Tensor, error) {
	size, err := byteSize(dt, shape)
	if err != nil {
		return nil, err
	}
	var data []byte
	b.mu.Lock()
	if l := b.free[size]; len(l) > 0 {
		data, b.free[size] = l[len(l)-1], l[:len(l)-1]
		b.freeBytes -= size
	}
	b.stats.Allocated += size
	b.stats.Peak = max(b.stats.Peak, b.stats.Allocated)
	b.mu.Unlock()
	if data == nil {
		data = make([]byte, size)
	} else if zero {
		clear(data)
	}
	return compute.NewTensor(b, dt, &storage{data: data}, false, shape...), nil
}

// The reuse cache's bounds: buffers between freeMin and freeMax bytes, at
// most freeCap bytes kept in all (when full it is emptied and refilled).
// Small buffers are kept too: a decode step's temporaries are rows of a
// few hundred floats, hundreds of them per token, and allocating them anew
// made a collection every few tokens.
const (
	freeMin = 64
	freeMax = 32 << 20
	freeCap = 128 << 20
)

// Wrap makes data (e.g. a memory-mapped weight) a read-only tensor, no copy.
func (b *Backend) Wrap(dt tensor.DType, data []byte, shape ...int) (*compute.Tensor, error) {
	size, err := byteSize(dt, shape)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("cpu: %s%v needs %d bytes, got %d", dt, shape, size, len(data))
	}
	b.mu.Lock()
	b.stats.Wrapped += size
	b.mu.Unlock()
	return compute.NewTensor(b, dt, &storage{data: data}, true, shape...), nil
}

// bytesOf returns the bytes of a contiguous tensor (views included).
func bytesOf(t *compute.Tensor) ([]byte, error) {
	s, ok := t.Storage.(*storage)
	if !ok {
		return nil, fmt.Errorf("cpu: tensor %v does not belong to the CPU backend", t)
	}
	if !t.Contiguous() {
		return nil, fmt.Errorf("cpu: tensor %v is not contiguous", t)
	}
	row := int64(t.Dim(-1))
	start, ok1 := t.DType.RowBytes(int64(t.Offset))
	size, ok2 := t.DType.RowBytes(int64(t.Elems()))
	if !ok1 || !ok2 || t.Offset%int(row) != 0 && t.DType.Quantized() {
		return nil, fmt.Errorf("cpu: view %v does not start on a row boundary", t)
	}
	if start+size > int64(len(s.data)) {
		return nil, fmt.Errorf("cpu: view %v outside its storage", t)
	}
	return s.data[start : start+size], nil
}

// f32 returns a contiguous F32 tensor's values as a []float32 (no copy).
func f32(t *compute.Tensor) []float32 {
	if t == nil {
		return nil
	}
	bs, err := bytesOf(t)
	if err != nil || len(bs) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&bs[0])), len(bs)/4)
}

// f32All returns the whole storage of an F32 tensor as floats, for strided
// views (offsets and strides index into it).
func f32All(t *compute.Tensor) []float32 {
	s := t.Storage.(*storage)
	if len(s.data) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&s.data[0])), len(s.data)/4)
}

// Write copies raw bytes into a contiguous tensor.
func (b *Backend) Write(t *compute.Tensor, src []byte) error {
	if t.ReadOnly() {
		return fmt.Errorf("cpu: write to read-only tensor %v", t)
	}
	dst, err := bytesOf(t)
	if err != nil {
		return err
	}
	if len(src) != len(dst) {
		return fmt.Errorf("cpu: write of %d bytes to %v (%d bytes)", len(src), t, len(dst))
	}
	copy(dst, src)
	return nil
}

// Read copies a contiguous tensor's raw bytes out.
func (b *Backend) Read(t *compute.Tensor, dst []byte) error {
	src, err := bytesOf(t)
	if err != nil {
		return err
	}
	if len(src) != len(dst) {
		return fmt.Errorf("cpu: read of %v (%d bytes) into %d bytes", t, len(src), len(dst))
	}
	// Large reads (a batch's logits, a megabyte per row) are copied by
	// every thread.
	b.pool.ParallelMin(len(src), copyGrain, 4*copyGrain, func(s, e int) { copy(dst[s:e], src[s:e]) })
	return nil
}

// copyGrain is the bytes of a parallel copy's smallest part.
const copyGrain = 64 << 10

// Free releases an Alloc'd tensor's memory (to the Go collector).
func (b *Backend) Free(t *compute.Tensor) {
	if t == nil || t.ReadOnly() {
		return
	}
	s, ok := t.Storage.(*storage)
	if !ok || s.data == nil || t.Offset != 0 || t.Strides != nil {
		return // views free nothing
	}
	size := int64(len(s.data))
	b.mu.Lock()
	b.stats.Allocated -= size
	if size >= freeMin && size <= freeMax {
		if b.free == nil || b.freeBytes+size > freeCap {
			// Full: start over, so the sizes in use now are the ones kept
			// (not those of an earlier prompt or batch size).
			b.free, b.freeBytes = map[int64][][]byte{}, 0
		}
		b.free[size] = append(b.free[size], s.data)
		b.freeBytes += size
	}
	b.mu.Unlock()
	s.data = nil
}

// Sync returns at once: the CPU backend runs ops synchronously.
func (b *Backend) Sync() error { return nil }

// Memory reports allocated, peak and wrapped bytes.
func (b *Backend) Memory() compute.MemStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Close stops the worker pool.
func (b *Backend) Close() error {
	b.pool.Close()
	b.mu.Lock()
	b.free, b.freeBytes = nil, 0
	b.mu.Unlock()
	return nil
}

// scratchBuf returns a reusable buffer of at least n bytes. Only one op runs
// at a time per backend, so one buffer suffices.
func (b *Backend) scratchBuf(n int) []byte {
	if cap(b.scratch) < n {
		b.scratch = make([]byte, n)
	}
	return b.scratch[:n]
}
