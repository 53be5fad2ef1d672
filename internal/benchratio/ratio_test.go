package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRatios(t *testing.T) {
	in := `goos: linux
BenchmarkRoundTrip/path=raw/K=1-2         	  192780	        18.00 p50-µs	        57.00 p99-µs	     40000 rt/s
BenchmarkRoundTrip/path=relay/K=1-2       	   88813	        33.00 p50-µs	        74.00 p99-µs	     20000 rt/s
BenchmarkRoundTrip/path=raw/K=1000-2      	  144556	     22057 p50-µs	     47771 p99-µs	     40000 rt/s
BenchmarkRoundTrip/path=relay/K=1000-2    	  142053	     24149 p50-µs	     63744 p99-µs	     30000 rt/s
BenchmarkRoundTrip/path=relay/K=100-2     	  142053	     24149 p50-µs	     63744 p99-µs	     30000 rt/s
PASS
`
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if got := lines[len(lines)-1]; got != "ratio K=1000: 0.75" {
		t.Fatalf("last line %q", got)
	}
	if got := lines[len(lines)-2]; got != "ratio K=1: 0.50" {
		t.Fatalf("K=1 line %q (K=100 has no raw result and is skipped)", got)
	}
	if err := run(strings.NewReader("nothing"), &bytes.Buffer{}); err == nil {
		t.Fatal("no results accepted")
	}
}
