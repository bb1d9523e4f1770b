package disko

import (
	"os"
	"os/exec"
	"path/filepath"
)

// toolDirs are searched after $PATH: a non-login root shell (sudo, the
// agent over SSH) often has no sbin directories in $PATH.
var toolDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/run/current-system/sw/bin"}

// FindTool returns the path of an executable, looking in $PATH and then in
// the sbin directories.
func FindTool(name string) (string, bool) {
	if filepath.IsAbs(name) {
		st, err := os.Stat(name)
		return name, err == nil && !st.IsDir() && st.Mode()&0o111 != 0
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, d := range toolDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// LocalHost describes the machine this process runs on.
func LocalHost() *Host {
	return &Host{
		HasTool:  func(n string) bool { _, ok := FindTool(n); return ok },
		CanMount: kernelCanMount,
	}
}
