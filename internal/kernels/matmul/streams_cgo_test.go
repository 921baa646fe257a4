//go:build cgo && amd64

package matmul

import "testing"

// TestStreamLen: runs that would start within 512 bytes of a multiple of
// 4 KiB apart are made up to 3 rows shorter: the first length down from
// rows / S whose every pair of run starts is at least 512 bytes off such
// a multiple, or where none is, the one whose closest pair is farthest;
// runs already apart, short calls and one stream keep rows / S.
func TestStreamLen(t *testing.T) {
	gap := func(len, s, wrb int) int {
		g := 4096
		for k := 1; k < s; k++ {
			m := k * len * wrb % 4096
			g = min(g, m, 4096-m)
		}
		return g
	}
	for _, c := range []struct{ rows, s, wrb int }{
		{4096, 4, 2816},        // Q5_0, 4096 columns
		{512, 4, 2816},         // one of the backend's ranges of those
		{32768, 4, 360},        // Q4_0 output projection range
		{262144, 4, 1280},      // F16 output projection
		{131072, 4, 1280},      // … one thread's half
		{384, 3, 1760},         // Q3_K, 4096 columns
		{4096, 2, 2304},        // Q4_0, two streams
		{4100, 4, 4096 + 1024}, // already apart
		{4100, 4, 4096 + 128},  // 128 bytes a row: the best of 4 lengths is 256 bytes off
	} {
		got, len0 := streamLen(c.rows, c.s, c.wrb), c.rows/c.s
		if got > len0 || got < len0-3 {
			t.Errorf("%+v: %d rows per stream, want %d..%d", c, got, len0-3, len0)
		}
		if gap(len0, c.s, c.wrb) >= 512 {
			if got != len0 {
				t.Errorf("%+v: runs already apart, but shortened to %d", c, got)
			}
			continue
		}
		want, wantGap := len0, gap(len0, c.s, c.wrb)
		for l := len0 - 1; l >= len0-3 && wantGap < 512; l-- {
			if g := gap(l, c.s, c.wrb); g > wantGap {
				want, wantGap = l, g
			}
		}
		if got != want {
			t.Errorf("%+v: %d rows per stream, want %d (run starts %d bytes off a 4 KiB multiple)", c, got, want, wantGap)
		}
		if wantGap < 512 && c.wrb%4096 != 128 {
			t.Errorf("%+v: no length within 3 rows puts the runs 512 bytes apart", c)
		}
	}
	for _, c := range []struct{ rows, s int }{{40, 4}, {7, 3}, {100, 1}} {
		if got := streamLen(c.rows, c.s, 4096); got != c.rows/c.s {
			t.Errorf("rows %d in %d streams: %d per stream, want %d", c.rows, c.s, got, c.rows/c.s)
		}
	}
}
