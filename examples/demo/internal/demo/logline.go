package demo

import (
	"strconv"
	"strings"
)

// LogLine is one line of a child's output, read as a logrus text entry
// (`time="…" level=info msg="…" key=value …`) when Structured is set.
type LogLine struct {
	Structured bool
	Level      string            // "info", "warning", ...
	Msg        string            // the message
	Fields     map[string]string // every other field but time, unquoted
	Raw        string            // the line as written
}

// ParseLine reads one line of child output. A line that is not a
// logrus text entry (no level and msg, or a malformed pair) is kept raw
// only. It is pure.
func ParseLine(line string) LogLine {
	l := LogLine{Raw: line}
	fields := make(map[string]string)
	rest := strings.TrimSpace(line)
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t\"") {
			return l
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			end := quotedEnd(after)
			if end < 0 {
				return l
			}
			v, err := strconv.Unquote(after[:end])
			if err != nil {
				return l
			}
			value, rest = v, after[end:]
		} else {
			value, rest, _ = strings.Cut(after, " ")
		}
		fields[key] = value
		rest = strings.TrimLeft(rest, " ")
	}
	level, hasLevel := fields["level"]
	msg, hasMsg := fields["msg"]
	if !hasLevel || !hasMsg {
		return l
	}
	delete(fields, "level")
	delete(fields, "msg")
	delete(fields, "time")
	l.Structured, l.Level, l.Msg, l.Fields = true, level, msg, fields
	return l
}

// quotedEnd returns the index just past the closing quote of the Go
// quoted string s starts with, or -1.
func quotedEnd(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}
