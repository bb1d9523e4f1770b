// Command nivis takes over Linux hosts over SSH and makes them what a
// declarative config says. The same binary is the on-host agent, and in the
// rescue system also its /bin/sh.
package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/nivis/nivis/cmd/nivis/cli"
	"github.com/nivis/nivis/internal/posixsh"
)

func main() {
	if filepath.Base(os.Args[0]) == "sh" {
		os.Exit(posixsh.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
