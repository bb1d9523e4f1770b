// Command nivis takes over Linux hosts over SSH and makes them what a
// declarative config says. The same binary is the on-host agent.
package main

import (
	"context"
	"os"

	"github.com/nivis/nivis/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
