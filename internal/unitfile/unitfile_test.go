package unitfile

import "testing"

func TestUnitFileInstallLinks(t *testing.T) {
	u := Parse("[Unit]\nDescription=x\n[Install]\nWantedBy=multi-user.target \\\n  graphical.target\nRequiredBy=foo.target\nAlias=bar.service\n")
	links := u.InstallLinks("/etc/systemd/system", "a.service", "/etc/systemd/system/a.service")
	for _, want := range []string{
		"/etc/systemd/system/multi-user.target.wants/a.service",
		"/etc/systemd/system/graphical.target.wants/a.service",
		"/etc/systemd/system/foo.target.requires/a.service",
		"/etc/systemd/system/bar.service",
	} {
		if links[want] != "/etc/systemd/system/a.service" {
			t.Errorf("missing %s in %v", want, links)
		}
	}
	tmpl := Parse("[Install]\nWantedBy=multi-user.target\nDefaultInstance=eth0\n").InstallLinks("/etc/systemd/system", "dhcp@.service", "/etc/systemd/system/dhcp@.service")
	if _, ok := tmpl["/etc/systemd/system/multi-user.target.wants/dhcp@eth0.service"]; !ok {
		t.Errorf("template default instance not linked: %v", tmpl)
	}
	if !Parse("[Service]\nX-RestartIfChanged=false\n").Bool("X-ReloadIfChanged", false) == false {
		t.Error("bool default")
	}
	if Parse("[Unit]\nX-RestartIfChanged=no\n").Bool("X-RestartIfChanged", true) {
		t.Error("X-RestartIfChanged=no read as true")
	}
	if got := Parse("[Install]\nAlso=a.socket b.service\nAlso=\nAlso=c.path\n").Also(); len(got) != 1 || got[0] != "c.path" {
		t.Errorf("Also with a reset: %q", got)
	}
	// The installer links in a relative tree to where the unit was found.
	rel := Parse("[Install]\nWantedBy=multi-user.target\n").InstallLinks("etc/systemd/system", "x.service", "/lib/systemd/system/x.service")
	if rel["etc/systemd/system/multi-user.target.wants/x.service"] != "/lib/systemd/system/x.service" || len(rel) != 1 {
		t.Errorf("relative links %v", rel)
	}
}
