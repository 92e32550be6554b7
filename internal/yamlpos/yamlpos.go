// Package yamlpos reports mistakes in YAML input at the line they are on:
// syntax errors at the line that is wrong (not where the enclosing block
// began, as yaml.v3 says), unknown fields with the known one most likely
// meant. The resource decoder and the control planes' --config files use
// it.
package yamlpos

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a mistake at a line of a YAML input: a field that is not
// known or holds the wrong kind of value, or YAML that does not parse.
// With File set it reads FILE:LINE: PATH: MSG, as compilers print theirs.
type Error struct {
	// File names the input; empty reads "line N:" instead.
	File string
	// Line is 1-based, counted from the start of the input (of the whole
	// stream, for DecodeAll).
	Line int
	// Path is the field's path, such as networking.inbound[0].port; empty
	// for a syntax error.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	at := fmt.Sprintf("line %d", e.Line)
	if e.File != "" {
		at = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Path == "" {
		return at + ": " + e.Msg
	}
	return at + ": " + e.Path + ": " + e.Msg
}

// InFile returns err with the file named, when err is an *Error: the line
// says where, so the context err wraps it in is dropped. Other errors are
// returned as they are.
func InFile(file string, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	named := *e
	named.File = file
	return &named
}

// UnknownField says that key, at line and path, is not a field, and which
// of known it most likely meant, or else lists them.
func UnknownField(line int, path, key string, known []string) *Error {
	if s := Closest(key, known); s != "" {
		return &Error{Line: line, Path: path, Msg: fmt.Sprintf("unknown field; did you mean %q?", s)}
	}
	return &Error{Line: line, Path: path, Msg: "unknown field: use one of " + strings.Join(known, ", ")}
}

// Closest is the candidate nearest to s in edits (case aside), if it is
// near enough to be a slip: at most a third of s's letters, and at least
// one, differ.
func Closest(s string, candidates []string) string {
	best, bestDist := "", max(1, len(s)/3)+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbouring letters that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// maxRescans and maxRescanBytes bound how many prefixes, and how many bytes
// in all, Syntax parses to find the line (input may come from the network).
const (
	maxRescans     = 2000
	maxRescanBytes = 8 << 20
)

// Syntax turns a YAML parser error about data into a *LineError at
// the line that is wrong. yaml.v3 reports the line where the enclosing
// block began (a mapping three lines up for a key indented one space too
// far); the wrong line is the first whose prefix of data fails to parse
// with the same message. Errors of other shapes are returned as they are.
func Syntax(data []byte, err error) error {
	m := yamlErrLine.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	lines := bytes.SplitAfter(data, []byte("\n"))
	budget := maxRescanBytes
	for l := max(line, 1); l <= len(lines) && l < line+maxRescans; l++ {
		prefix := bytes.Join(lines[:l], nil)
		if budget -= len(prefix); budget < 0 {
			break // a large input: keep the parser's line
		}
		perr := ParseAll(prefix)
		if pm := yamlErrLine.FindStringSubmatch(fmt.Sprint(perr)); pm != nil && pm[2] == msg {
			line = l
			break
		}
	}
	return &Error{Line: line, Msg: "not valid YAML: " + msg + syntaxHint(msg, lines, line)}
}

// syntaxHint says what usually causes msg at line.
func syntaxHint(msg string, lines [][]byte, line int) string {
	if line >= 1 && line <= len(lines) && bytes.ContainsRune(lines[line-1], '\t') {
		return " (YAML indents with spaces, not tabs)"
	}
	for _, s := range []string{"did not find expected key", "mapping values are not allowed", "did not find expected '-' indicator", "did not find expected <document start>"} {
		if strings.Contains(msg, s) {
			return " (check this line's indentation against the lines above it)"
		}
	}
	return ""
}

// ParseAll parses every document of data and returns the first error.
func ParseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
