//go:build linux

package sysmgr

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// accounts resolves user and group names from the root's own /etc/passwd
// and /etc/group (no cgo, no NSS: a --root tree answers for itself).
type accounts struct {
	root   string
	users  map[string]int
	groups map[string]int
}

func loadAccounts(root string) (*accounts, error) {
	a := &accounts{root: root}
	return a, a.reload()
}

func (a *accounts) reload() error {
	var err error
	if a.users, err = readIDs(a.root + "/etc/passwd"); err != nil {
		return err
	}
	a.groups, err = readIDs(a.root + "/etc/group")
	return err
}

// readIDs maps the first field of each line to the third (uid or gid).
func readIDs(p string) (map[string]int, error) {
	m := map[string]int{}
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if id, err := strconv.Atoi(fields[2]); err == nil {
			m[fields[0]] = id
		}
	}
	return m, sc.Err()
}

func (a *accounts) uid(name string) (int, error) { return a.id(name, a.users, "user") }
func (a *accounts) gid(name string) (int, error) { return a.id(name, a.groups, "group") }

func (a *accounts) id(name string, m map[string]int, what string) (int, error) {
	if name == "" || name == "root" {
		return 0, nil
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	if id, ok := m[name]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("%s %q does not exist on the host; declare it under %ss: or use an existing one", what, name, what)
}

func (a *accounts) hasUser(name string) bool  { _, ok := a.users[name]; return ok || name == "root" }
func (a *accounts) hasGroup(name string) bool { _, ok := a.groups[name]; return ok || name == "root" }

// prefix makes useradd and groupadd edit a --root tree's own /etc.
func (h *Host) prefix() []string {
	if h.Root == "/" {
		return nil
	}
	return []string{"--prefix", h.Root}
}

// groupaddArgv and useraddArgv are the shadow-utils calls that add an
// account, present on every distro with systemd.
func (h *Host) groupaddArgv(g AccountSpec) []string {
	argv := append([]string{"groupadd"}, h.prefix()...)
	if g.System {
		argv = append(argv, "--system")
	}
	if g.ID != nil {
		argv = append(argv, "--gid", strconv.Itoa(*g.ID))
	}
	return append(argv, g.Name)
}

func (h *Host) useraddArgv(u AccountSpec, acct *accounts) []string {
	argv := append([]string{"useradd"}, h.prefix()...)
	if u.System {
		argv = append(argv, "--system")
	}
	if u.ID != nil {
		argv = append(argv, "--uid", strconv.Itoa(*u.ID))
	}
	switch {
	case u.Group != "":
		argv = append(argv, "--gid", u.Group)
	case acct.hasGroup(u.Name):
		argv = append(argv, "--gid", u.Name)
	default:
		argv = append(argv, "--user-group")
	}
	if len(u.Groups) > 0 {
		argv = append(argv, "--groups", strings.Join(u.Groups, ","))
	}
	home := u.Home
	if home == "" {
		home = "/nonexistent"
	}
	argv = append(argv, "--home-dir", home, "--no-create-home")
	shell := u.Shell
	if shell == "" {
		shell = "/usr/sbin/nologin"
	}
	argv = append(argv, "--shell", shell)
	if u.Description != "" {
		argv = append(argv, "--comment", u.Description)
	}
	return append(argv, u.Name)
}

func (h *Host) addGroup(ctx context.Context, l *Ledger, acct *accounts, g AccountSpec) error {
	if acct.hasGroup(g.Name) {
		return nil
	}
	if _, err := h.run(ctx, h.groupaddArgv(g)...); err != nil {
		return fmt.Errorf("add group %s: %w", g.Name, err)
	}
	l.Groups = appendUnique(l.Groups, g.Name)
	if err := h.saveLedger(l); err != nil {
		return err
	}
	return acct.reload()
}

func (h *Host) addUser(ctx context.Context, l *Ledger, acct *accounts, u AccountSpec) error {
	if acct.hasUser(u.Name) {
		return nil
	}
	if _, err := h.run(ctx, h.useraddArgv(u, acct)...); err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	l.Users = appendUnique(l.Users, u.Name)
	if err := h.saveLedger(l); err != nil {
		return err
	}
	return acct.reload()
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
