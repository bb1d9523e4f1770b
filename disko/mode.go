package disko

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Mode is which of disko's phases run, always in the order unmount,
// destroy, format, mount.
type Mode struct {
	Destroy bool
	Format  bool
	Mount   bool
	Unmount bool
}

// ParseMode reads disko's mode names: destroy, format, mount, unmount,
// comma-separated combinations ("destroy,format,mount"), and disko's own
// aliases "disko" (= destroy,format,mount) and "format,mount".
func ParseMode(s string) (Mode, error) {
	var m Mode
	if strings.TrimSpace(s) == "" {
		return m, fmt.Errorf("empty mode: use destroy, format, mount, unmount or a combination like destroy,format,mount")
	}
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "destroy":
			m.Destroy = true
		case "format", "create":
			m.Format = true
		case "mount":
			m.Mount = true
		case "unmount":
			m.Unmount = true
		case "disko", "destroyFormatMount":
			m.Destroy, m.Format, m.Mount = true, true, true
		case "formatMount":
			m.Format, m.Mount = true, true
		default:
			return Mode{}, fmt.Errorf("unknown mode %q: use destroy, format, mount, unmount or a combination like destroy,format,mount", part)
		}
	}
	if m.Unmount && (m.Destroy || m.Format || m.Mount) {
		return Mode{}, fmt.Errorf("mode unmount cannot be combined with other modes")
	}
	return m, nil
}

func (m Mode) String() string {
	var p []string
	if m.Unmount {
		p = append(p, "unmount")
	}
	if m.Destroy {
		p = append(p, "destroy")
	}
	if m.Format {
		p = append(p, "format")
	}
	if m.Mount {
		p = append(p, "mount")
	}
	return strings.Join(p, ",")
}

// MarshalJSON writes the mode as its string form.
func (m Mode) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON reads the string form.
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Writes reports whether the mode changes disk contents.
func (m Mode) Writes() bool { return m.Destroy || m.Format }
