//go:build !cgo || !amd64

package ops

// Without cgo or off amd64 only the plain-Go kernels exist. The *Fast
// functions below are never reached (useFast is false); they exist so that
// the dispatching code compiles unchanged.

var hasAVX2 = false

var useFast = false

func fastName() string { return "go" }

func expFast(x, y []float32) { expRef(x, y) }

func toF16Fast(x []float32, y []byte) { toF16Ref(x, y) }

func f16TableFast(x, g, y []float32, table *[1 << 16]uint16, clamp bool) {
	f16TableRef(x, g, y, table, clamp)
}

func softcapFast(x, y []float32, inv, cap float32) { softcapRef(x, y, inv, cap) }

func siluFast(x, g, y []float32) { siluRef(x, g, y) }

func softmaxFast(x, out []float32, n int, scale float32, mask []float32, maskRows, r0, r1 int) {
	softmaxRef(x, out, n, scale, mask, maskRows, r0, r1)
}

func rmsNormFast(x, w, out []float32, n int, eps float32, r0, r1 int) {
	rmsNormRef(x, w, out, n, eps, r0, r1)
}

func attentionFast(a *attnArgs, r0, r1 int) { attentionRef(a, r0, r1) }

func binaryFast(a, b, out []float32, nb int, mul bool) {
	for i := range out {
		if mul {
			out[i] = a[i] * b[i%nb]
		} else {
			out[i] = a[i] + b[i%nb]
		}
	}
}

func ropeNeoXFast(x, cs []float32, nHeads, headDim, nRot, r0, r1 int) {
	for r := r0; r < r1; r++ {
		tok := r / nHeads
		rotate(x[r*headDim:(r+1)*headDim], cs[tok*nRot:(tok+1)*nRot], RoPEParams{NRot: nRot, NeoX: true})
	}
}
