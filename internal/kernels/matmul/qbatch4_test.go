package matmul

import (
	"math/rand/v2"
	"testing"

	"mica/internal/tensor"
)

// TestQ4BatchBlocking: the AVX2/AVX-512 block-pair batch kernel
// (qkern_batch4.h: Q4_0, Q5_0, IQ4_NL, Q4_1 and Q5_1, the last two with their
// min sums carried beside the accumulators) walks activation groups,
// weight-row chunks, K segments of block pairs (accumulators carried between
// them in memory, an odd last block added on the last segment) and
// 8/4/2/1-row tiles. Every output must equal the n = 1 result bit for bit.
// The shapes put each level's edges in play: 1, 2 and 3 blocks (no pair, one
// pair, a pair and the odd block), 20 and 41 blocks (one segment; 41 with an
// odd last block), 43 blocks (pairs 16 + 5 and the odd block), 64 and 65
// blocks (two segments of 16 pairs), 100 weight rows of 65 blocks (past one
// chunk: 96 rows when accumulators are carried), 201 blocks (100 pairs:
// groups of 5 activation rows in 4+1 tiles, segments of 32+32+32+4 pairs; n =
// 9..23 takes several groups) and 261 blocks (130 pairs: groups of 3 rows in
// 2+1 tiles, segments of 32 pairs and a short one). Tolerance 0: every path
// performs the same float operations per element in the same order.
func TestQ4BatchBlocking(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	ns := []int{2, 3, 4, 5, 7, 8, 9, 15, 16, 19, 23, 31}
	for _, dt := range []tensor.DType{tensor.Q4_0, tensor.Q5_0, tensor.IQ4_NL, tensor.Q4_1, tensor.Q5_1} {
		for _, c := range []struct{ nb, rows int }{{1, 3}, {2, 5}, {3, 4}, {20, 9}, {41, 13}, {43, 7}, {64, 5}, {65, 100}} {
			batchAgainstN1(t, dt, rng, 32, c.nb, c.rows, ns)
		}
		batchAgainstN1(t, dt, rng, 32, 201, 5, []int{9, 17, 23})
		batchAgainstN1(t, dt, rng, 32, 261, 11, []int{2, 5, 9, 17})
	}
}

// TestKBatchTiles: the AVX2 super-block batch kernel (qkern_batchk.h) takes
// activation rows eight at a time in one loop and four, two or one at a
// time in another (the weights and scales loaded once for all the rows).
// Every output must equal the n = 1 result bit for bit, for each type and
// for n that leave each remainder tile. Tolerance 0: the same float
// operations per element in the same order, the integer sums exact.
func TestKBatchTiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(81, 82))
	ns := []int{2, 3, 4, 5, 6, 7, 8, 9, 13, 15, 16, 17}
	for _, dt := range []tensor.DType{tensor.Q2_K, tensor.Q3_K, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.IQ4_XS} {
		for _, c := range []struct{ nb, rows int }{{1, 5}, {3, 9}} {
			batchAgainstN1(t, dt, rng, 256, c.nb, c.rows, ns)
		}
	}
}
