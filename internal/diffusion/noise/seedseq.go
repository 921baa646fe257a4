package noise

// seedSequence is numpy's SeedSequence (numpy.random.bit_generator): a hash
// that turns an entropy integer and a spawn key into a pool of 32-bit words,
// from which generate_state draws seeds. torchsde's Brownian trees take the
// seeds of their random draws from it, so k-diffusion's DPM++ SDE noise
// depends on it bit for bit. The constants and the mixing order are
// numpy's (its documented algorithm, after O'Neill's seed_seq_fe).
type seedSequence struct {
	pool []uint32
}

const (
	ssInitA    uint32 = 0x43b0d7e5
	ssMultA    uint32 = 0x931e8875
	ssInitB    uint32 = 0x8b51f9dd
	ssMultB    uint32 = 0x58f38ded
	ssMixMultL uint32 = 0xca01f9dd
	ssMixMultR uint32 = 0x4973f715
	ssXShift          = 16
)

// uint32Words splits a non-negative integer into little-endian 32-bit
// words, as numpy does with Python integers (0 is one word, 0).
func uint32Words(v uint64) []uint32 {
	if v == 0 {
		return []uint32{0}
	}
	var w []uint32
	for v > 0 {
		w = append(w, uint32(v))
		v >>= 32
	}
	return w
}

// newSeedSequence builds the pool for entropy and an optional spawn key
// (each key element coerced to words and concatenated). With a spawn key,
// the entropy words are padded with zeros to the pool size first, as numpy
// does since 1.19.
func newSeedSequence(entropy uint64, spawnKey []uint64, poolSize int) *seedSequence {
	run := uint32Words(entropy)
	var spawn []uint32
	for _, k := range spawnKey {
		spawn = append(spawn, uint32Words(k)...)
	}
	if len(spawn) > 0 && len(run) < poolSize {
		run = append(run, make([]uint32, poolSize-len(run))...)
	}
	ent := append(run, spawn...)

	hc := ssInitA
	hashmix := func(v uint32) uint32 {
		v ^= hc
		hc *= ssMultA
		v *= hc
		return v ^ v>>ssXShift
	}
	mix := func(x, y uint32) uint32 {
		r := ssMixMultL*x - ssMixMultR*y
		return r ^ r>>ssXShift
	}
	pool := make([]uint32, poolSize)
	for i := range pool {
		if i < len(ent) {
			pool[i] = hashmix(ent[i])
		} else {
			pool[i] = hashmix(0)
		}
	}
	for src := range pool {
		for dst := range pool {
			if src != dst {
				pool[dst] = mix(pool[dst], hashmix(pool[src]))
			}
		}
	}
	for src := len(pool); src < len(ent); src++ {
		for dst := range pool {
			pool[dst] = mix(pool[dst], hashmix(ent[src]))
		}
	}
	return &seedSequence{pool: pool}
}

// generateState is generate_state(n) with uint32 output.
func (s *seedSequence) generateState(n int) []uint32 {
	hc := ssInitB
	out := make([]uint32, n)
	for i := range out {
		v := s.pool[i%len(s.pool)]
		v ^= hc
		hc *= ssMultB
		v *= hc
		out[i] = v ^ v>>ssXShift
	}
	return out
}
