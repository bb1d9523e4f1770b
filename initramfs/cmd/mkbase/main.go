// Command mkbase builds the u-root base of the nivis rescue image for one
// architecture: a busybox of u-root commands with u-root's init as /init and
// /bin/uinit pointing at the nivis agent (added on the target at assembly
// time), written as a zstd-compressed newc cpio. `make` runs it once per
// arch; the result is embedded into the nivis binary by package
// initramfs/base, so operators never need a Go toolchain.
//
// The output is deterministic: the same sources give byte-identical files.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"

	"github.com/nivis/nivis/internal/carry"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkbase:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkbase", flag.ContinueOnError)
	fs.SetOutput(stderr)
	arch := fs.String("arch", "amd64", "GOARCH of the image: amd64 or arm64")
	out := fs.String("o", "", "output file (.cpio.zst)")
	verbose := fs.Bool("v", false, "show the builder's log")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("-o is required")
	}
	switch *arch {
	case "amd64", "arm64":
	default:
		return fmt.Errorf("-arch %q: use amd64 or arm64", *arch)
	}
	start := time.Now()
	raw, err := build(*arch, *verbose, stderr)
	if err != nil {
		return err
	}
	zst, err := compress(raw)
	if err != nil {
		return err
	}
	if err := writeAtomic(*out, zst); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mkbase: %s: %d commands, cpio %.1f MiB, zstd %.2f MiB, built in %s\n",
		*out, len(commands), mib(len(raw)), mib(len(zst)), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// build runs u-root's image builder and returns the uncompressed cpio.
func build(arch string, verbose bool, stderr io.Writer) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "nivis-mkbase-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	l := llog.New(level, llog.WritePrintf(stderr))

	cpioPath := filepath.Join(tmp, "base.cpio")
	// uinit is the agent: u-root's init runs /bin/uinit with the arguments
	// in /etc/uinit.flags, then the shells if it ever exits.
	uinit := carry.AgentPath + " agent rescue-init"
	err = uimage.Create(l,
		uimage.WithReplaceEnv(golang.Default(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH(arch))),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithTempDir(tmp),
		uimage.WithCPIOOutput(cpioPath),
		uimage.WithBusyboxCommands(commands...),
		uimage.WithInit("init"),
		uimage.WithUinitCommand(uinit),
		uimage.WithShell("gosh"),
	)
	if err != nil {
		return nil, fmt.Errorf("building the u-root busybox for %s (needs the go toolchain and the u-root sources in go.mod): %w", arch, err)
	}
	return os.ReadFile(cpioPath)
}

// compress uses one encoder goroutine and fixed settings so the output
// depends only on the input.
func compress(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true),
	)
	if err != nil {
		return nil, err
	}
	if _, err := enc.Write(raw); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func mib(n int) float64 { return float64(n) / (1 << 20) }
