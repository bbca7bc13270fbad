package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// rssSampler polls a process's resident memory (VmRSS) every 10 ms.
type rssSampler struct {
	pid        int
	idle, peak float64 // MiB
	done       chan struct{}
	stopped    chan struct{}
}

func startRSSSampler(pid int) *rssSampler {
	s := &rssSampler{pid: pid, done: make(chan struct{}), stopped: make(chan struct{})}
	if pid == 0 {
		close(s.stopped)
		return s
	}
	s.idle = rssMiB(pid)
	s.peak = s.idle
	go func() {
		defer close(s.stopped)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.peak = max(s.peak, rssMiB(pid))
			}
		}
	}()
	return s
}

// stop returns the resident memory before the scenario and its peak, in MiB.
func (s *rssSampler) stop() (idle, peak float64) {
	if s.pid != 0 {
		close(s.done)
	}
	<-s.stopped
	return s.idle, s.peak
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseFloat(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 64)
			return kb / 1024
		}
	}
	return 0
}
