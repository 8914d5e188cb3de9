package harness

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. Linux
// has exported 100 to user space on every architecture Go supports.
const clockTick = 100

// CPUTime is a process's user + system CPU time so far, from /proc/<pid>/stat.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads fields 14 (utime) and 15 (stime). The command name in
// field 2 may hold spaces and parentheses, so fields are counted from the
// last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14 -> f[11], stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want >= 13", len(f))
	}
	ut, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat: utime: %w", err)
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat: stime: %w", err)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// Memory is a process's resident set: now (VmRSS) and the peak (VmHWM) since
// start or since the last ResetPeak, and the anonymous part of RSS (heap,
// stacks; RssAnon), which, unlike the file-backed rest, does not depend on
// how much of the executable the kernel happened to map in.
type Memory struct {
	RSS, Peak, Anon int64 // bytes
}

// ReadMemory reads VmRSS and VmHWM from /proc/<pid>/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	return parseStatusMemory(b)
}

func parseStatusMemory(b []byte) (Memory, error) {
	var m Memory
	var seen int
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM" && k != "RssAnon") {
			continue
		}
		f := strings.Fields(v) // "1234 kB"
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("/proc status: %s: unexpected value %q", k, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("/proc status: %s: %w", k, err)
		}
		switch k {
		case "VmRSS":
			m.RSS = n << 10
			seen++
		case "VmHWM":
			m.Peak = n << 10
			seen++
		default:
			m.Anon = n << 10
		}
	}
	if seen != 2 {
		return Memory{}, fmt.Errorf("/proc status: VmRSS or VmHWM missing (kernel thread or zombie?)")
	}
	return m, nil
}

// ResetPeak sets VmHWM back to the current RSS (clear_refs value 5, see
// proc(5)), so each load's peak is its own rather than the largest so far.
// Only the owner of the process (or root) may do it; the harness owns every
// process it measures.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// Usage samples CPU and memory of a group of processes (Causeway's two hops
// are two processes counted as one system).
type Usage struct {
	CPU  time.Duration
	Peak int64 // sum of the processes' VmHWM
	RSS  int64 // sum of VmRSS
	Anon int64 // sum of RssAnon
}

// Sample reads CPU and memory of every pid and adds them up.
func Sample(pids []int) (Usage, error) {
	var u Usage
	for _, pid := range pids {
		c, err := CPUTime(pid)
		if err != nil {
			return Usage{}, err
		}
		m, err := ReadMemory(pid)
		if err != nil {
			return Usage{}, err
		}
		u.CPU += c
		u.Peak += m.Peak
		u.RSS += m.RSS
		u.Anon += m.Anon
	}
	return u, nil
}
