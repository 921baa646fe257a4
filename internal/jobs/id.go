package jobs

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// Job ids are 26 characters of Crockford base32 encoding 128 bits: a 48-bit
// Unix millisecond time followed by 80 random bits. Ids made by one process
// sort in creation order: within one millisecond the random part is
// incremented instead of redrawn.

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

type idSource struct {
	mu     sync.Mutex
	lastMS uint64
	hi     uint16 // random bits 79..64
	lo     uint64 // random bits 63..0
}

var ids idSource

func newID(now time.Time) string {
	return ids.next(now)
}

func (s *idSource) next(now time.Time) string {
	ms := uint64(now.UnixMilli())
	s.mu.Lock()
	if ms <= s.lastMS {
		// Same (or an earlier, after a clock step) millisecond: keep the
		// last time and increment the random part so the order holds.
		ms = s.lastMS
		s.lo++
		if s.lo == 0 {
			s.hi++
			if s.hi == 0 { // 2^80 ids in one millisecond: move time on
				ms++
			}
		}
	} else {
		var b [10]byte
		rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		s.hi = binary.BigEndian.Uint16(b[:2])
		s.lo = binary.BigEndian.Uint64(b[2:])
		// Leave head-room so increments rarely carry into hi.
		s.lo &^= 1 << 63
	}
	s.lastMS = ms
	hi, lo := s.hi, s.lo
	s.mu.Unlock()
	return encodeID(ms, hi, lo)
}

// encodeID writes the 128-bit value ms<<80 | hi<<64 | lo as 26 base32 digits
// (the top two bits of the first digit are always zero).
func encodeID(ms uint64, hi uint16, lo uint64) string {
	// 128 bits as two words: top = ms<<16 | hi, bottom = lo.
	top := ms<<16 | uint64(hi)
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | top<<59
		top >>= 5
	}
	return string(out[:])
}

// validID reports whether s looks like a job id (26 base32 digits). It keeps
// arbitrary request strings out of SQL parameters and log lines.
func validID(s string) bool {
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
}
