package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt":                    "/mnt",
		`/name\040with\040spaces`: "/name with spaces",
		`/tab\011nl\012bs\134`:    "/tab\tnl\nbs\\",
		`/not\9octal`:             `/not\9octal`,
		`/short\04`:               `/short\04`,
		`/over\777`:               `/over\777`,
		`/end\040`:                "/end ",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestParseSkipsMalformed: a bad line is the error, the good ones are kept.
func TestParseSkipsMalformed(t *testing.T) {
	data := "garbage\n" +
		`27 1 0:25 / /mnt/with\040space rw - ext4 /dev/vda1 rw` + "\n" +
		"x 1 0:2 / / rw - rootfs rootfs rw\n"
	ms, err := Parse([]byte(data))
	if err == nil || len(ms) != 1 || ms[0].Mountpoint != "/mnt/with space" || ms[0].Source != "/dev/vda1" || ms[0].ID != 27 {
		t.Errorf("Parse = %+v, %v", ms, err)
	}
}
