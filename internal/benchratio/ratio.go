package main

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// line matches e.g. "BenchmarkRoundTrip/path=relay/K=1000-2  142053  24149 p50-µs  63744 p99-µs  38646 rt/s".
var (
	nameRe = regexp.MustCompile(`^BenchmarkRoundTrip/path=(raw|relay)/K=(\d+)(?:-\d+)?\s`)
	rtRe   = regexp.MustCompile(`([\d.]+) rt/s`)
)

// results keeps, per K, the throughput of each path (the last run wins
// when a benchmark is repeated with -count).
type results struct {
	raw, relay map[int]float64
}

func newResults() *results { return &results{raw: map[int]float64{}, relay: map[int]float64{}} }

func (r *results) add(line string) {
	m := nameRe.FindStringSubmatch(line)
	if m == nil {
		return
	}
	rt := rtRe.FindStringSubmatch(line)
	if rt == nil {
		return
	}
	k, _ := strconv.Atoi(m[2])
	v, err := strconv.ParseFloat(rt[1], 64)
	if err != nil {
		return
	}
	if m[1] == "raw" {
		r.raw[k] = v
	} else {
		r.relay[k] = v
	}
}

// ratios returns "ratio K=…: …" lines by increasing K.
func (r *results) ratios() ([]string, error) {
	var ks []int
	for k := range r.relay {
		if r.raw[k] > 0 {
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return nil, errors.New("no matching raw and relay results")
	}
	sort.Ints(ks)
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, fmt.Sprintf("ratio K=%d: %.2f", k, r.relay[k]/r.raw[k]))
	}
	return out, nil
}
