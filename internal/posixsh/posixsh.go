// Package posixsh is the POSIX shell of the nivis rescue system. u-root's
// userland has no `sh` (its gosh ignores `-c` arguments and lacks umask),
// yet every SSH client sends command lines to a shell: the rescue image links
// /bin/sh to the nivis binary, which interprets them with mvdan.cc/sh.
package posixsh

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// Main runs `sh [-e] -c SCRIPT [NAME [ARGS...]]`, `sh FILE [ARGS...]` or
// `sh` reading a script from stdin, and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		script, name string
		params       []string
		errexit      bool
		fromFile     string
	)
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-c" && i+1 < len(args):
			script = args[i+1]
			i++
			if i+1 < len(args) {
				name = args[i+1]
				params = args[i+2:]
			}
			i = len(args)
		case a == "-e":
			errexit = true
		case a == "-s" || a == "-l" || a == "-i":
		case a == "--":
			if i+1 < len(args) {
				fromFile = args[i+1]
				params = args[i+2:]
			}
			i = len(args)
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr, "sh: unsupported option %s\n", a)
			return 2
		default:
			fromFile = a
			params = args[i+1:]
			i = len(args)
		}
	}
	var src io.Reader
	switch {
	case script != "":
		src = strings.NewReader(script)
	case fromFile != "":
		f, err := os.Open(fromFile)
		if err != nil {
			fmt.Fprintf(stderr, "sh: %v\n", err)
			return 127
		}
		defer f.Close()
		src = f
		name = fromFile
	default:
		src = stdin
		stdin = strings.NewReader("")
	}
	if name == "" {
		name = "sh"
	}
	prog, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(src, name)
	if err != nil {
		// Fall back to bash syntax: many clients send bash-isms.
		if script == "" {
			fmt.Fprintf(stderr, "sh: %v\n", err)
			return 2
		}
		prog, err = syntax.NewParser().Parse(strings.NewReader(script), name)
		if err != nil {
			fmt.Fprintf(stderr, "sh: %v\n", err)
			return 2
		}
	}
	opts := []interp.RunnerOption{
		interp.StdIO(stdin, stdout, stderr),
		interp.Env(expand.ListEnviron(os.Environ()...)),
		interp.Params(append([]string{"--"}, params...)...),
	}
	if errexit {
		opts = append(opts, interp.Params("-e"))
	}
	r, err := interp.New(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "sh: %v\n", err)
		return 2
	}
	err = r.Run(context.Background(), prog)
	if err == nil {
		return 0
	}
	if st, ok := interp.IsExitStatus(err); ok {
		return int(st)
	}
	switch {
	default:
		fmt.Fprintf(stderr, "sh: %v\n", err)
		return 1
	}
}
