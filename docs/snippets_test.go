// Package docs holds the test that keeps the Go code in README.md and
// docs/*.md compiling.
package docs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// snippet is one ```go block of a Markdown file.
type snippet struct {
	file string // relative to the repository root
	line int    // of the opening fence
	code string
}

// TestGoSnippetsCompile: every ```go block in README.md and docs/*.md is
// a complete, gofmt-formatted Go file that compiles against this
// checkout. Each is built as a package of its own through go build
// -overlay, so nothing is written into the repository.
func TestGoSnippetsCompile(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	var snippets []snippet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		snippets = append(snippets, goBlocks(rel, string(b))...)
	}
	if len(snippets) == 0 {
		t.Fatal("no ```go blocks found: README.md has at least one")
	}

	tmp := t.TempDir()
	overlay := map[string]string{}
	var pkgs []string
	for i, s := range snippets {
		where := fmt.Sprintf("%s:%d", s.file, s.line)
		if !strings.HasPrefix(strings.TrimSpace(s.code), "//") && !strings.HasPrefix(strings.TrimSpace(s.code), "package ") {
			t.Errorf("%s: a Go block must be a whole file, starting with its package clause (or its doc comment)", where)
			continue
		}
		if formatted, err := format.Source([]byte(s.code)); err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		} else if string(formatted) != s.code {
			t.Errorf("%s: not gofmt-formatted; gofmt gives:\n%s", where, formatted)
		}
		src := filepath.Join(tmp, fmt.Sprintf("snippet%d.go", i))
		if err := os.WriteFile(src, []byte(s.code), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := fmt.Sprintf("docs/snippet_%d", i) // does not exist: only the overlay has it
		overlay[filepath.Join(root, dir, "main.go")] = src
		pkgs = append(pkgs, "./"+dir)
	}
	if t.Failed() {
		return
	}
	ov, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	ovFile := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ovFile, ov, 0o644); err != nil {
		t.Fatal(err)
	}
	// With more than one package go build compiles and discards: no
	// link, no binary left in the repository. ./common makes it so.
	cmd := exec.Command(goTool(), append([]string{"build", "-overlay", ovFile, "./common"}, pkgs...)...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		// Point at the Markdown: snippetN.go:L is line fence+L of its file.
		msg := regexp.MustCompile(`\S*snippet(\d+)\.go:(\d+)`).ReplaceAllStringFunc(out.String(), func(m string) string {
			sub := regexp.MustCompile(`snippet(\d+)\.go:(\d+)$`).FindStringSubmatch(m)
			i, _ := strconv.Atoi(sub[1])
			l, _ := strconv.Atoi(sub[2])
			if i >= len(snippets) {
				return m
			}
			return fmt.Sprintf("%s:%d", snippets[i].file, snippets[i].line+l)
		})
		t.Fatalf("the Go blocks do not compile: %v\n%s", err, msg)
	}
}

// goBlocks returns the ```go blocks of a Markdown text.
func goBlocks(file, text string) []snippet {
	var out []snippet
	var cur *snippet
	var b strings.Builder
	for i, line := range strings.Split(text, "\n") {
		fence := strings.TrimSpace(line)
		switch {
		case cur == nil && fence == "```go":
			cur = &snippet{file: file, line: i + 1}
			b.Reset()
		case cur != nil && fence == "```":
			cur.code = b.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			b.WriteString(line + "\n")
		}
	}
	return out
}

func TestGoBlocks(t *testing.T) {
	md := "text\n```go\npackage main\n\nfunc main() {}\n```\n```sh\nmake\n```\n  ```go\npackage x\n  ```\n"
	got := goBlocks("x.md", md)
	if len(got) != 2 || got[0].line != 2 || got[0].code != "package main\n\nfunc main() {}\n" || got[1].line != 10 || got[1].code != "package x\n" {
		t.Fatalf("goBlocks = %+v", got)
	}
}

// goTool is the go command that runs this test.
func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}
