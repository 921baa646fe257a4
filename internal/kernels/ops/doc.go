// Package ops holds mica's non-matmul kernels: elementwise arithmetic,
// activations, normalisations, softmax, RoPE, attention, im2col/conv2d,
// upsampling, concatenation, strided copies and embedding lookup.
//
// # Calling convention
//
// Every kernel is a single-threaded function over a half-open range
// [start, end) of independent work units (elements, rows, heads, groups,
// channels or output pixels, as each function says). Kernels never start
// goroutines: the compute backend's worker pool splits the range, and since
// no unit depends on how the range was split, results are bit-identical at
// any thread count. Tensors are plain row-major []float32 slices (outermost
// dimension first); callers validate shapes, and kernels index slices
// directly, so a too-short slice is a programming error that panics. The
// kernels with many parameters (Attention, Conv2D) have a Validate method
// that returns an error instead.
//
// # Reference and fast paths
//
// Each kernel has a plain-Go version (the oracle, and all that a
// CGO_ENABLED=0 build or a non-amd64 build uses). On amd64 with cgo, the hot
// kernels (softmax, SiLU/SwiGLU, RMSNorm, attention, Softcap, and the F16
// table lookups of GELU/GEGLU/QuickGELU) have AVX2+FMA+F16C versions in C,
// chosen at run time from the CPU's features; FastPath reports which is in
// use. The tests compare fast against reference on awkward sizes. Only the
// tiled attention has an AVX-512 version (compiled, checked bit for bit
// against AVX2 where the CPU has AVX-512, and through a 16-lane emulation
// built from AVX2 pairs everywhere); the other AVX2 kernels run on AVX-512
// machines as they are.
//
// Attention has two shapes of kernel: one query row at a time (decode, few
// queries), and tiled (AttentionTiled) for many queries: blocks of 96
// (query, head) rows sharing a KV head stream over blocks of 64 keys with
// an online softmax, in registers, so prefill and Stable Diffusion's
// 4096-token self-attention run near the FMA peak without a score matrix.
//
// Convolutions with F16 kernels (every SD conv) have a direct kernel
// (ConvF16): the input is rounded to F16 once into padded bands, 16 output
// pixels are packed tap by tap and multiplied by 6 output channels at a
// time, with the same lane sums as im2col + the F16 matmul, so the result
// is bit-identical to that path (which small images and other weight types
// still take).
//
// Add/Mul/Scale and the layout kernels stay Go (memory-bound; the Go
// compiler's loops are fast enough), as do LayerNorm, GroupNorm, RoPE's
// rotation and im2col.
//
// # Numerics (ggml's CPU backend is the target)
//
//   - RMSNorm: squares rounded to float, summed in double; mean =
//     float(sum/n); scale = 1/sqrtf(mean+eps); y = (x*scale)*w.
//   - LayerNorm: mean = float(double sum)/n; variance = float(double sum of
//     float (x-mean)^2 / n); y = ((x-mean)*(1/sqrtf(var+eps)))*w + b.
//     (ggml's AVX2 build adds the squares eight at a time in float before
//     the double sum; mica adds each square in double.)
//   - GroupNorm: channels per group = ceil(C/G) like ggml; double sums.
//   - Softmax: w = x*scale (+mask); max subtracted; exps summed in double;
//     y = e * float(1/sum).
//   - GELU: ggml's CPU backend (built with GGML_GELU_FP16, the default) does
//     not evaluate the tanh formula per element for F32: x <= -10 gives 0,
//     x >= 10 gives x, otherwise x is rounded to F16 and looked up in a
//     65536-entry F16 table of 0.5x(1+tanh(sqrt(2/pi)x(1+0.044715x^2))).
//     GELU and GEGLU reproduce that (the table is built from the same float
//     formula), GELUTanh evaluates the formula in float32 exactly. QuickGELU
//     likewise uses ggml's F16 table of x/(1+e^(-1.702x)) (without the ±10
//     clamp, as ggml). GELUErf is 0.5x(1+erf(x/sqrt2)) in float32 (ggml
//     does the same, no table).
//   - SiLU: x/(1+e^-x).
//   - RoPE: theta_scale = powf(base, -2/n_rot); per position the angle
//     starts at float(pos) and is multiplied by theta_scale once per pair
//     in float (not pow per index), divided by the pair's frequency factor,
//     times freq_scale; cos/sin in float; the rotation is x0*c - x1*s,
//     x0*s + x1*c in float. NeoX pairs (i, i+n_rot/2); normal pairs (2i,
//     2i+1); dimensions past n_rot are copied. YaRN (ext_factor, beta_fast,
//     beta_slow) is not implemented: ext_factor is taken as 0. RoPEAngles
//     builds the angle table once for all layers; RoPEApply uses it.
//   - Attention: scores s = (q·k)*scale, or with softcap c,
//     s = c*tanh((q·k)*(scale/c)); then the additive mask; online softmax
//     over blocks of 64 keys; q, scores and the output accumulator in F32
//     (F16 keys and values are widened exactly). That is the arithmetic of
//     ggml's tiled CPU flash attention (batches of >= 64 queries) up to
//     summation order. For batches of fewer than 64 queries ggml runs a
//     different kernel that rounds q to F16 for F16 keys and keeps the
//     output in an F16 accumulator (errors near 1e-3); the
//     AttentionParams.GGMLSmallBatch mode reproduces that kernel bit for
//     bit (checked against ggml's outputs in testdata/ggml) for parity
//     runs against llama.cpp. ggml's single-query kernel for 512 or more
//     keys additionally splits the keys across threads, so its bits depend
//     on the thread count; mica's never do. Numerics = NumericsGGMLNoFlash
//     reproduces llama.cpp's non-flash path instead (what its default F16
//     cache uses without -fa): q rounded to F16, scores as F16 dot products
//     in tinyBLAS's 16-lane order, ggml's softmax (double sum), weights
//     rounded to F16, then the V product in the same order; it keeps one
//     score row per query (memory O(keys), not O(keys²)). Gemma models use
//     it with F16 caches. Visibility follows llama.cpp:
//     a key at position pk is seen from position pq iff pk >= 0 (not an
//     empty cell), pk <= pq when causal, and pq - pk < Window when
//     Window > 0 (llama_hparams::is_masked_swa, LLAMA_SWA_TYPE_STANDARD).
//     The fast kernel takes the query heads that share a KV head together,
//     so a block of keys is read (and widened from F16) once for all.
//
// testdata/ggml holds outputs of ggml's CPU backend for these kernels;
// TestGGMLGoldens checks RMSNorm, LayerNorm, GroupNorm, GELU, QuickGELU and
// the small-batch attention emulation bit for bit, the rest within stated
// bounds.
//
// The fast exp (used by softmax, SiLU and attention) is a degree-7
// polynomial after Cody-Waite reduction; its measured max relative error
// against float64 math.Exp over [-87.3, 88.7] is 7.7e-8 (0.65 float32 ulp;
// TestExpAccuracy logs and bounds it). Below about -87.3 it returns
// subnormals or 0, with less relative accuracy. The reference uses
// float32(math.Exp(float64(x))), i.e. the correctly rounded expf.
package ops
