package deploycheck

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Instruction is one Dockerfile instruction: Cmd upper-cased ("RUN"), Args
// the rest of the line with continuations joined and comments dropped.
type Instruction struct {
	Cmd  string
	Args string
}

// Stage is one FROM and the instructions after it.
type Stage struct {
	From  string // the image, e.g. "golang:${GO_VERSION}-bookworm"
	Name  string // the name after AS, or ""
	Insts []Instruction
}

// ParseDockerfile reads a Dockerfile loosely: enough to check its stages,
// not a full parser (no heredocs, no escape directive). Instructions before
// the first FROM (ARG) are returned as a stage with an empty From.
func ParseDockerfile(r io.Reader) ([]Stage, error) {
	var (
		stages  = []Stage{{}}
		logical strings.Builder
	)
	flush := func() error {
		line := strings.TrimSpace(logical.String())
		logical.Reset()
		if line == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := Instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			var st Stage
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			if len(f) == 0 {
				return fmt.Errorf("FROM without an image")
			}
			st.From = f[0]
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			stages = append(stages, st)
			return nil
		}
		last := &stages[len(stages)-1]
		last.Insts = append(last.Insts, in)
		return nil
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "#") {
			continue // comments, parser directives included, even inside a continuation
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			logical.WriteString(body)
			logical.WriteByte(' ')
			continue
		}
		logical.WriteString(line)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(stages[0].Insts) == 0 {
		stages = stages[1:]
	}
	return stages, nil
}

// Find returns the arguments of each instruction cmd in the stage.
func (s Stage) Find(cmd string) []string {
	var out []string
	for _, in := range s.Insts {
		if in.Cmd == cmd {
			out = append(out, in.Args)
		}
	}
	return out
}

// SplitWords splits a shell command line into words, honouring single and
// double quotes (no escapes, no expansion): enough for the build command.
func SplitWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		quote rune
		in    bool
	)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
