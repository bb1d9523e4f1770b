package disko

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPlanningIsPortable keeps package disko (parse, validate, plan,
// render) free of Linux-only code: it must build for macOS and import
// neither x/sys/unix nor the apply side. Probing and applying live in
// disko/apply.
func TestPlanningIsPortable(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain")
	}
	for _, goos := range []string{"linux", "darwin"} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".")
		cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("GOOS=%s go list: %v\n%s", goos, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == "golang.org/x/sys/unix" || strings.HasPrefix(dep, "github.com/nivis/nivis/disko/") {
				t.Errorf("GOOS=%s: package disko depends on %s; Linux I/O belongs in disko/apply", goos, dep)
			}
		}
	}
	cmd := exec.Command("go", "build", "-o", "/dev/null", ".")
	cmd.Env = append(cmd.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("GOOS=darwin go build ./disko: %v\n%s", err, out)
	}
}
