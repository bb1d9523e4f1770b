// Package disko reads disko's declarative disk layouts (the JSON value of
// `disko.devices`, or the same tree under `disko:` in a nivis config),
// validates them with a report that points at lines, turns them into an
// ordered plan of typed operations (printable as a tree per disk and as
// JSON), and executes that plan on Linux: GPT written with go-diskfs, the
// kernel told with BLKPG, mkfs and friends run through a Runner that records
// every argv, /dev/disk/by-* names resolved in Go so nothing waits on udev.
//
// The package logs nothing on its own: callers pass a Logf and an event
// callback in Options.
package disko
