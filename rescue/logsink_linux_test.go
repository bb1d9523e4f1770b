//go:build linux

package rescue

import (
	"bytes"
	"strings"
	"testing"
)

func TestLogSink(t *testing.T) {
	var console, kmsg, file bytes.Buffer
	// u-root's init sets the console loglevel to 5: kernel messages below
	// notice (warnings and worse) reach the console by themselves.
	l := newRescueLogger(&console, &kmsg, &file, func() int { return 5 })
	l.Info("network: ens3 up")
	l.Warn("network: eth9 not found")
	l.Debug("modules: e1000: no device")
	l.Info(strings.Repeat("x", 2000))

	k := kmsg.String()
	if !strings.Contains(k, "<6>nivis: ") || !strings.Contains(k, "network: ens3 up") ||
		!strings.Contains(k, "<4>nivis: ") || strings.Contains(k, "e1000") {
		t.Errorf("kmsg:\n%s", k)
	}
	for _, rec := range strings.Split(strings.TrimSpace(k), "\n") {
		if len(rec) > 1000 {
			t.Errorf("a kmsg record of %d bytes", len(rec))
		}
	}
	c := console.String()
	if !strings.Contains(c, "nivis: ") || !strings.Contains(c, "ens3 up") || strings.Contains(c, "eth9") || strings.Contains(c, "e1000") {
		t.Errorf("console (the warning is echoed by the kernel, debug stays out):\n%s", c)
	}
	f := file.String()
	for _, want := range []string{"ens3 up", "eth9 not found", "e1000: no device"} {
		if !strings.Contains(f, want) {
			t.Errorf("log file lacks %q", want)
		}
	}
}
