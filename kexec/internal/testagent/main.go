// Command testagent stands in for the nivis binary in kexec's VM test: it
// serves the kexec verbs like `nivis agent VERB`, and as the rescue
// image's uinit (`agent rescue-init`) it only reports on the console what
// it finds, because the real in-RAM agent lives in another package.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nivis/nivis/kexec"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/carry"
	"github.com/nivis/nivis/internal/exitcode"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "agent" {
		fmt.Fprintln(os.Stderr, "usage: testagent agent VERB")
		os.Exit(2)
	}
	if os.Args[2] == "rescue-init" {
		rescueInit()
	}
	err := agent.NewTable(kexec.Handlers()).Serve(context.Background(), os.Args[2], os.Stdin, os.Stdout)
	os.Exit(int(exitcode.Of(err)))
}

// rescueInit prints one line the test looks for on the serial console,
// then stays: u-root's init must never see its uinit return.
func rescueInit() {
	st, err := carry.Read(carry.File)
	host, mods, keys := "?", 0, 0
	if err == nil {
		host, keys = st.Hostname, len(st.AuthorizedKeys)
	}
	ko, _ := filepath.Glob("/lib/modules/*/kernel/*/*/*.ko*")
	ko2, _ := filepath.Glob("/lib/modules/*/kernel/*/*/*/*.ko*")
	mods = len(ko) + len(ko2)
	_, mkfs := os.Stat("/usr/sbin/mkfs.ext4")
	line := fmt.Sprintf("NIVIS-TESTAGENT rescue-init hostname=%s keys=%d modules=%d mkfs.ext4=%v carry_err=%v\n", host, keys, mods, mkfs == nil, err)
	os.Stdout.WriteString(line)
	if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		k.WriteString(line)
		k.Close()
	}
	for {
		time.Sleep(time.Hour)
	}
}
