//go:build unix

package matmul

import "syscall"

// processCPU is the CPU time this process has used (user + system), in
// seconds: on a shared machine, CPU time per operation is steadier than
// wall time when other jobs take turns on the cores.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
