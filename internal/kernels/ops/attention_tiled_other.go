//go:build !cgo || !amd64

package ops

// Without cgo or off amd64 the tiled attention runs its plain-Go
// reference (attentionTiledRef); this stub keeps the dispatch unchanged.
func attentionTiledFast(a *attnArgs, nQ, t0, t1 int) { attentionTiledRef(a, nQ, t0, t1) }

var hasAVX512, tiledAVX512, tiledEmu16 = false, false, false
