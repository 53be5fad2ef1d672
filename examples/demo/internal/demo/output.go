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

// Writer returns a LineWriter that writes every line under name.
func (o *Output) Writer(name string) *LineWriter {
	return NewLineWriter(func(line []byte) { o.writeLines(name, line) })
}

// LineWriter splits what is written to it into lines and hands each
// complete one, without its line ending, to a function. It is the writer
// for a child's stdout and stderr. It is not safe for concurrent use
// (os/exec calls it from one goroutine when Stdout and Stderr are the
// same writer).
type LineWriter struct {
	emit func(line []byte) // must not keep line
	buf  []byte            // an incomplete last line
}

// NewLineWriter returns a LineWriter calling emit for every line. emit
// must not keep the slice it is given.
func NewLineWriter(emit func(line []byte)) *LineWriter {
	return &LineWriter{emit: emit}
}

// Write buffers p and emits every complete line.
func (l *LineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	rest := l.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		l.emit(bytes.TrimSuffix(rest[:i], []byte("\r")))
		rest = rest[i+1:]
	}
	l.buf = append(l.buf[:0], rest...)
	return len(p), nil
}

// Flush emits a buffered incomplete line, if any. Call it once the child
// has exited.
func (l *LineWriter) Flush() {
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
}
