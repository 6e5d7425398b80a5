package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// window is the measured interval: only operations completing inside it count.
type window struct {
	start, end time.Time
}

// parseWindow reads "window START END" where both are CLOCK_MONOTONIC seconds, and places them on
// Go's clock (whose monotonic reading drives every comparison below).
func parseWindow(line string) (window, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "window" {
		return window{}, fmt.Errorf("expected \"window START END\", got %q", line)
	}
	start, err1 := strconv.ParseFloat(fields[1], 64)
	end, err2 := strconv.ParseFloat(fields[2], 64)
	if err1 != nil || err2 != nil || end < start {
		return window{}, fmt.Errorf("bad window %q", line)
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return window{}, err
	}
	goNow := time.Now()
	monotonic := float64(now.Sec) + float64(now.Nsec)/1e9
	at := func(seconds float64) time.Time {
		return goNow.Add(time.Duration((seconds - monotonic) * float64(time.Second)))
	}
	return window{at(start), at(end)}, nil
}

func (w window) contains(t time.Time) bool {
	return !t.Before(w.start) && t.Before(w.end)
}

// cpuSeconds is this process's user and system CPU so far, all threads together.
func cpuSeconds() float64 {
	var usage unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &usage); err != nil {
		return math.NaN()
	}
	seconds := func(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}

func writeLatencies(path string, latencies []float64) error {
	buffer := make([]byte, 8*len(latencies))
	for i, latency := range latencies {
		binary.LittleEndian.PutUint64(buffer[8*i:], math.Float64bits(latency))
	}
	return os.WriteFile(path, buffer, 0o644)
}
