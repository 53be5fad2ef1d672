// Command benchratio reads `go test -bench RoundTrip` output on stdin,
// echoes it, and prints for each client count K the relay/raw throughput
// ratio. The last line is "ratio K=<largest K>: <number>".
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	res := newResults()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		res.add(line)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	lines, err := res.ratios()
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}
