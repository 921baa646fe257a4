// Row streams of the matrix-vector kernels (fkern.h, qkern_fused.h): a
// call's rows are cut into S runs of consecutive rows, read side by side.
//
// Runs that start a multiple of 4 KiB apart map to the same L1 sets (and,
// at multiples of 64 KiB, the same L2 sets), so their lines, the ones
// prefetched ahead included, evict each other. Power-of-two row counts
// (4096 rows, a 262144-row output projection, the backend's ranges of
// them) make exactly such runs. mica_stream_len returns the rows per run:
// rows / S, made up to 3 rows shorter where that puts every pair of run
// starts at least 512 bytes away from a multiple of 4 KiB (the rows left
// over go one at a time, as the remainder always did). Which rows a run
// holds never changes a row's value. Q5_0 matrix-vector, one thread, CPU
// time (Zen 3): 6144×4096 6.3 → 9.5 GB/s, 1024×4096 9.3 → 10.6,
// 2048×4096 13.8 → 14.7; Q4_0 and Q8_0 within ±8%.
#ifndef MICA_STREAMS_H
#define MICA_STREAMS_H

#include <stddef.h>

// the distance of run starts k·len rows apart from the nearest multiple of
// 4 KiB, smallest over k < S
static inline int mica_stream_gap(int len, int S, size_t wrb) {
	int gap = 4096;
	for (int k = 1; k < S; k++) {
		const int m = (int)(((size_t)k * (size_t)len * wrb) % 4096);
		const int d = m < 4096 - m ? m : 4096 - m;
		gap = d < gap ? d : gap;
	}
	return gap;
}

static inline int mica_stream_len(int rows, int S, size_t wrb) {
	const int len0 = rows / S;
	if (S < 2 || len0 < 16)
		return len0;
	int best = len0, bestgap = mica_stream_gap(len0, S, wrb);
	for (int d = 1; d <= 3 && bestgap < 512; d++) {
		const int g = mica_stream_gap(len0 - d, S, wrb);
		if (g > bestgap) {
			best = len0 - d;
			bestgap = g;
		}
	}
	return best;
}

#endif
