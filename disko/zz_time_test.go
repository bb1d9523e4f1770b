package disko

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"strconv"
	"strings"
)

func TestZZFuzzCorpusTime(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(os.Getenv("CORPUS"), "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		s := string(b)
		// go test fuzz v1\n[]byte("...")
		i := strings.Index(s, "[]byte(")
		data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(s[i+7:]), ")"))
		if err != nil { t.Log(f, err); continue }
		start := time.Now()
		l, r := ParseBytes([]byte(data))
		if l != nil {
			l.Validate(&r, nil, Mode{Destroy: true, Format: true, Mount: true})
			NewPlan(l, Mode{Destroy: true, Format: true, Mount: true}, testState(l), PlanOptions{}, nil)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Logf("%s took %v: %q", filepath.Base(f), d, data[:min(200, len(data))])
		}
	}
}
