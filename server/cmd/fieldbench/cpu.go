package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTicks = 100

// procCPU returns the CPU seconds (user + system) of process pid, plus,
// with children, those of its live child processes (PostgreSQL's
// backends), from /proc.
func procCPU(pid int, children bool) float64 {
	self, _ := statOf(strconv.Itoa(pid))
	total := self.cpu
	if !children {
		return total
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		st, ok := statOf(filepath.Base(d))
		if ok && st.ppid == pid {
			total += st.cpu
		}
	}
	return total
}

type procStat struct {
	ppid int
	cpu  float64
}

func statOf(pid string) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command may hold spaces: the fields start after its ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return procStat{ppid: ppid, cpu: (ut + st) / clockTicks}, true
}

// cpuMeter reads the CPU seconds of the servers of the bench.
type cpuMeter map[string]int // name → pid

func parsePids(s string) cpuMeter {
	m := cpuMeter{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if n, err := strconv.Atoi(v); ok && err == nil && n > 0 {
			m[k] = n
		}
	}
	return m
}

func (m cpuMeter) read() map[string]float64 {
	out := map[string]float64{}
	for name, pid := range m {
		out[name] = procCPU(pid, name == "postgres")
	}
	return out
}

// since returns the CPU seconds each server spent since before.
func (m cpuMeter) since(before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m.read() {
		out[k] = v - before[k]
	}
	return out
}
