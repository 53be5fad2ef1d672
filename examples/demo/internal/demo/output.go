package demo

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// Output writes whole lines from several sources to one writer, each
// prefixed with its source's name padded to a common width ("mgr-1  | ").
type Output struct {
	width int

	mu sync.Mutex // guards w: one line is one Write
	w  io.Writer
}

// NewOutput writes to w, padding names to the longest of names.
func NewOutput(w io.Writer, names ...string) *Output {
	o := &Output{w: w}
	for _, n := range names {
		o.width = max(o.width, len(n))
	}
	return o
}

// Printf writes one line (or several, if the text holds newlines) under
// name.
func (o *Output) Printf(name, format string, args ...any) {
	o.writeLines(name, []byte(fmt.Sprintf(format, args...)))
}

func (o *Output) writeLines(name string, text []byte) {
	text = bytes.TrimSuffix(text, []byte("\n"))
	var b bytes.Buffer
	for _, line := range bytes.Split(text, []byte("\n")) {
		fmt.Fprintf(&b, "%-*s | %s\n", o.width, name, bytes.TrimSuffix(line, []byte("\r")))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = o.w.Write(b.Bytes())
}

// Writer returns a writer for a child's stdout and stderr that prefixes
// every complete line with name. Call Flush after the child has exited
// to write a last line without a newline. The writer is not safe for
// concurrent use (os/exec calls it from one goroutine when Stdout and
// Stderr are the same writer).
func (o *Output) Writer(name string) *LineWriter {
	return &LineWriter{o: o, name: name}
}

// LineWriter is the writer Output.Writer returns.
type LineWriter struct {
	o    *Output
	name string
	buf  []byte // an incomplete last line
}

// Write buffers p and writes out every complete line.
func (l *LineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		l.o.writeLines(l.name, l.buf[:i+1])
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}

// Flush writes a buffered incomplete line, if any.
func (l *LineWriter) Flush() {
	if len(l.buf) > 0 {
		l.o.writeLines(l.name, l.buf)
		l.buf = l.buf[:0]
	}
}
