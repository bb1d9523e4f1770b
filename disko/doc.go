// Package disko reads disko's declarative disk layouts (the JSON value of
// `disko.devices`, or the same tree under `disko:` in a nivis config),
// validates them with a report that points at lines, and turns them into an
// ordered plan of typed operations (printable as a tree per disk and as
// JSON). It is pure planning: it builds on every OS and touches no disk.
// Package disko/apply probes the disks and executes a plan on Linux.
package disko
