// Package sysmgr layers managed systemd units and files onto a running
// distro: a content-addressed store, numbered generations, activation as a
// computed plan from what the host has to what the config declares, with a
// write-ahead journal, complete revert on any failure, and
// confirm-or-rollback.
//
// The config side (kind Services, kind Inventory, Bundle, Plan, Generation)
// builds on every OS; the host side (Host, the agent verbs) is Linux-only.
package sysmgr
