//go:build linux

package sysmgr

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// LedgerFile records which paths nivis owns on the host and what was there
// before. It, not a generation, decides what is managed: it is written
// before a path is created and after it is removed, so after a crash it
// never claims less than nivis touched.
const LedgerFile = StateDir + "/owned.json"

// Ledger is the ownership record.
type Ledger struct {
	Paths map[string]*Owned `json:"paths"`
	// Users and Groups nivis created (it never changes or removes others).
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Masked lists units that were running when nivis masked them, so
	// unmasking (a removal, a revert, deactivate) starts them again.
	Masked []string `json:"masked,omitempty"`
}

// Owned is one path nivis owns.
type Owned struct {
	// Implicit marks a parent directory created for an entry.
	Implicit bool `json:"implicit,omitempty"`
	// Backup is what was at the path before nivis took it.
	Backup *Backup `json:"backup,omitempty"`
}

// Backup is an original kept aside under BackupDir.
type Backup struct {
	// ID names the copy under BackupDir (files only).
	ID     string `json:"id,omitempty"`
	Kind   string `json:"kind"` // file, symlink, dir
	Mode   uint32 `json:"mode,omitempty"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Target string `json:"target,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

func (h *Host) loadLedger() (*Ledger, error) {
	l := &Ledger{Paths: map[string]*Owned{}}
	raw, err := os.ReadFile(h.path(LedgerFile))
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, l); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v); it lists what nivis owns, restore it from a backup before going on", LedgerFile, err)
	}
	if l.Paths == nil {
		l.Paths = map[string]*Owned{}
	}
	return l, nil
}

func (h *Host) saveLedger(l *Ledger) error {
	sort.Strings(l.Users)
	sort.Strings(l.Groups)
	raw, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return writeBytesAtomic(h.path(LedgerFile), raw, 0o600)
}

// backupID is stable per path, so a repeated backup of the same path
// (after a crash) overwrites its own earlier copy and nothing else.
func backupID(p string) string {
	s := sha256.Sum256([]byte(p))
	return hex.EncodeToString(s[:12]) + "-" + objectNameRe.ReplaceAllString(path.Base(p), "_")
}

// takeBackup keeps what is at p aside and records it, in that order: a
// crash in between leaves an unreferenced copy and the original in place.
func (h *Host) takeBackup(l *Ledger, p string) error {
	if o := l.Paths[p]; o != nil && o.Backup != nil {
		return nil // done before a crash; the path may already hold nivis's content
	}
	d, err := inspect(h.path(p))
	if err != nil {
		return err
	}
	b := &Backup{Kind: d.Kind, Mode: d.Mode, UID: d.UID, GID: d.GID}
	switch d.Kind {
	case "":
		// Nothing there any more: own the path without a backup.
		b = nil
	case "file":
		b.ID = backupID(p)
		if err := os.MkdirAll(h.path(BackupDir), 0o700); err != nil {
			return err
		}
		if err := copyFileAtomic(h.path(p), filepath.Join(h.path(BackupDir), b.ID), 0o600, -1, -1); err != nil {
			return fmt.Errorf("back up %s: %w", p, err)
		}
		if b.SHA256, err = hashFile(filepath.Join(h.path(BackupDir), b.ID)); err != nil {
			return err
		}
	case "symlink":
		b.Target = d.Target
	case "dir":
	default:
		return fmt.Errorf("%s is %s; nivis keeps only files, symlinks and directories aside", p, d.describe())
	}
	o := l.Paths[p]
	if o == nil {
		o = &Owned{}
		l.Paths[p] = o
	}
	o.Backup = b
	o.Implicit = false
	return h.saveLedger(l)
}

// restoreBackup puts the original back at p, then forgets it, then deletes
// the copy; each step is safe to repeat after a crash.
func (h *Host) restoreBackup(l *Ledger, p string) error {
	o := l.Paths[p]
	if o == nil {
		return nil
	}
	b := o.Backup
	if b != nil {
		full := h.path(p)
		switch b.Kind {
		case "file":
			src := filepath.Join(h.path(BackupDir), b.ID)
			if err := h.clearForReplace(full); err != nil {
				return err
			}
			if err := copyFileAtomic(src, full, fileMode(b.Mode), b.UID, b.GID); err != nil {
				return fmt.Errorf("restore %s from %s: %w", p, src, err)
			}
		case "symlink":
			if err := h.clearForReplace(full); err != nil {
				return err
			}
			if err := symlinkAtomic(b.Target, full); err != nil {
				return fmt.Errorf("restore symlink %s: %w", p, err)
			}
		case "dir":
			if err := os.MkdirAll(full, fileMode(b.Mode)); err != nil {
				return err
			}
			if err := os.Chmod(full, fileMode(b.Mode)); err != nil {
				return err
			}
			if err := os.Lchown(full, b.UID, b.GID); err != nil {
				return err
			}
		}
	}
	delete(l.Paths, p)
	if err := h.saveLedger(l); err != nil {
		return err
	}
	if b != nil && b.ID != "" {
		_ = os.Remove(filepath.Join(h.path(BackupDir), b.ID))
	}
	return nil
}

// clearForReplace removes an empty directory nivis made where a file is
// going back; rename cannot replace a directory.
func (h *Host) clearForReplace(full string) error {
	if fi, err := os.Lstat(full); err == nil && fi.IsDir() {
		if err := os.Remove(full); err != nil {
			return fmt.Errorf("%s is a directory that is not empty; move its contents away so nivis can put the original file back: %w", full, err)
		}
	}
	return nil
}
