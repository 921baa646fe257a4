//go:build !cgo || !amd64

package peak

const isaName = "go"

func sumBytes(b []byte) uint64    { return sumBytesGo(b) }
func sumBytes4(b []byte) uint64   { return sumBytesGo(b) }
func fmaChains(iters int) float64 { return fmaChainsGo(iters) }
