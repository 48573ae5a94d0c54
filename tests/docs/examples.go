// Package docs runs the shell examples of README.md and docs/*.md against a
// live auth-server and compares what they print with the output the
// documents show, so that the documentation cannot drift from the service.
//
// An example is a fenced code block whose info string is "sh". Within it, a
// run of command lines followed by lines starting with "# " is one step: the
// commands run (in one bash shell per document, so variables carry over from
// step to step), and their output, standard error included, must match those
// comment lines. A comment line that follows a blank line, or opens a block,
// is a remark and is not compared. In an expected line "…" stands for any
// text; a line that starts with "…" stands for any number of lines. UUIDs,
// RFC 3339 times and runs of 12 or more hexadecimal digits match any value of
// the same shape. A step fails when its last command exits non-zero, unless
// its expected output ends with "# (exit status N)".
//
// An HTML comment "<!-- example: skip REASON -->" just before a block keeps it
// from running; the reason is required.
package docs

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Step is one run of commands of an example and the output shown for it.
type Step struct {
	// Line is the 1-based line of the step's first command in its document.
	Line int
	// Script is the commands, as written.
	Script string
	// Expected is the output shown after the commands, without the "# "
	// prefixes; nil when none is shown (the output is then not compared).
	Expected []string
	// ExitStatus is the status the last command must exit with.
	ExitStatus int
}

// Block is one fenced "sh" code block.
type Block struct {
	// Line is the 1-based line of the opening fence.
	Line int
	// Skip is the reason given for not running the block, if any.
	Skip  string
	Steps []Step
}

var (
	skipDirective = regexp.MustCompile(`^<!--\s*example:\s*skip\s*(.*?)\s*-->$`)
	anyDirective  = regexp.MustCompile(`^<!--\s*example:`)
	exitLine      = regexp.MustCompile(`^\(exit status (\d+)\)$`)
)

// Parse reads the "sh" blocks of a Markdown document.
func Parse(doc string) ([]Block, error) {
	var (
		blocks   []Block
		pending  string // the skip reason of a directive seen just before
		havePend bool
		inFence  bool
		fence    string
		cur      *Block
		lines    []string
		first    int
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if inFence {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, "`~") == "" {
				inFence = false
				if cur != nil {
					cur.Steps = splitSteps(lines, first)
					blocks = append(blocks, *cur)
					cur = nil
				}
				continue
			}
			if cur != nil {
				lines = append(lines, line)
			}
			continue
		}
		if m := skipDirective.FindStringSubmatch(trimmed); m != nil {
			if m[1] == "" {
				return nil, fmt.Errorf("line %d: a skipped example needs a reason", n)
			}
			pending, havePend = m[1], true
			continue
		} else if anyDirective.MatchString(trimmed) {
			return nil, fmt.Errorf("line %d: unknown example directive %q", n, trimmed)
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			marker := trimmed[:3]
			fence = strings.Repeat(marker[:1], len(trimmed)-len(strings.TrimLeft(trimmed, marker[:1])))
			info := strings.TrimSpace(strings.TrimLeft(trimmed, marker[:1]))
			inFence = true
			if info == "sh" {
				cur = &Block{Line: n}
				if havePend {
					cur.Skip = pending
				}
				lines, first = nil, n+1
			} else if havePend {
				return nil, fmt.Errorf("line %d: an example directive must be followed by a sh block", n)
			}
			havePend = false
			continue
		}
		if havePend && trimmed != "" {
			return nil, fmt.Errorf("line %d: an example directive must be followed by a sh block", n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if inFence {
		return nil, fmt.Errorf("unterminated code block")
	}
	return blocks, nil
}

// splitSteps cuts a block's lines into steps; first is the document line of
// lines[0].
func splitSteps(lines []string, first int) []Step {
	var (
		steps   []Step
		script  []string
		start   int
		output  []string
		inOut   bool
		prevBlk = true // at the start of the block, as after a blank line
	)
	flush := func() {
		if len(script) == 0 {
			return
		}
		s := Step{Line: start, Script: strings.Join(script, "\n"), Expected: output}
		if k := len(output); k > 0 {
			if m := exitLine.FindStringSubmatch(output[k-1]); m != nil {
				s.ExitStatus, _ = strconv.Atoi(m[1])
				s.Expected = output[:k-1]
				if len(s.Expected) == 0 {
					s.Expected = []string{}
				}
			}
		}
		steps = append(steps, s)
		script, output, inOut = nil, nil, false
	}
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			flush()
			prevBlk = true
			continue
		case strings.HasPrefix(line, "#"):
			if len(script) > 0 && !prevBlk {
				text := strings.TrimPrefix(line, "#")
				text = strings.TrimPrefix(text, " ")
				output = append(output, text)
				inOut = true
			}
			// A remark: after a blank line or at the start of the block.
		default:
			if inOut {
				flush()
			}
			if len(script) == 0 {
				start = first + i
			}
			script = append(script, line)
		}
		prevBlk = false
	}
	flush()
	return steps
}

var (
	uuidPattern = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	timePattern = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	hexPattern  = regexp.MustCompile(`[0-9a-f]{12,}`)
	// shapes of the masked values, in the order they are tried.
	shapes = []struct {
		find    *regexp.Regexp
		replace string
	}{
		{uuidPattern, `[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`},
		{timePattern, `\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})`},
	}
)

// linePattern turns one expected line into an anchored regular expression.
func linePattern(expected string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^`)
	for i, part := range strings.Split(expected, "…") {
		if i > 0 {
			b.WriteString(`.*?`)
		}
		b.WriteString(literalPattern(part))
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// literalPattern quotes text, except the masked shapes, which match any
// value of the same shape, and runs of spaces, which match any run.
func literalPattern(text string) string {
	type span struct {
		from, to int
		pattern  string
	}
	var spans []span
	taken := func(a, b int) bool {
		for _, s := range spans {
			if a < s.to && b > s.from {
				return true
			}
		}
		return false
	}
	for _, sh := range shapes {
		for _, m := range sh.find.FindAllStringIndex(text, -1) {
			if !taken(m[0], m[1]) {
				spans = append(spans, span{m[0], m[1], sh.replace})
			}
		}
	}
	for _, m := range hexPattern.FindAllStringIndex(text, -1) {
		if !taken(m[0], m[1]) {
			spans = append(spans, span{m[0], m[1], fmt.Sprintf(`[0-9a-f]{%d}`, m[1]-m[0])})
		}
	}
	var b strings.Builder
	pos := 0
	for pos < len(text) {
		var next *span
		for i := range spans {
			if spans[i].from >= pos && (next == nil || spans[i].from < next.from) {
				next = &spans[i]
			}
		}
		end := len(text)
		if next != nil {
			end = next.from
		}
		b.WriteString(spaced(text[pos:end]))
		if next == nil {
			break
		}
		b.WriteString(next.pattern)
		pos = next.to
	}
	return b.String()
}

var spaceRun = regexp.MustCompile(` {2,}`)

// spaced quotes text, letting a run of two or more spaces match any run of
// spaces (column alignment).
func spaced(text string) string {
	parts := spaceRun.Split(text, -1)
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return strings.Join(parts, ` +`)
}

// Match compares a step's output with the expected lines and describes the
// first difference ("" when they match).
func Match(expected []string, output string) string {
	actual := strings.Split(strings.ReplaceAll(output, "\r", ""), "\n")
	for len(actual) > 0 && strings.TrimSpace(actual[len(actual)-1]) == "" {
		actual = actual[:len(actual)-1]
	}
	for i := range actual {
		actual[i] = strings.TrimRight(actual[i], " \t")
	}
	if matchFrom(expected, actual) {
		return ""
	}
	return fmt.Sprintf("expected:\n%s\ngot:\n%s", indent(expected), indent(actual))
}

// matchFrom matches expected lines against actual lines, a line starting
// with "…" standing for any number of lines.
func matchFrom(expected, actual []string) bool {
	if len(expected) == 0 {
		return len(actual) == 0
	}
	e := strings.TrimRight(expected[0], " ")
	if strings.HasPrefix(e, "…") {
		for k := 0; k <= len(actual); k++ {
			if matchFrom(expected[1:], actual[k:]) {
				return true
			}
		}
		return false
	}
	if len(actual) == 0 || !linePattern(e).MatchString(actual[0]) {
		return false
	}
	return matchFrom(expected[1:], actual[1:])
}

func indent(lines []string) string {
	if len(lines) == 0 {
		return "    (nothing)"
	}
	return "    " + strings.Join(lines, "\n    ")
}
