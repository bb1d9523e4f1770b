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
