package cgroup

import "testing"

func TestHostPath(t *testing.T) {
	tests := []struct{ driver, in, want, unit string }{
		{Cgroupfs, "/kubepods/pod1/abc", "/kubepods/pod1/abc", ""},
		{Cgroupfs, "berth/abc", "/berth/abc", ""},
		{Cgroupfs, "/kubepods/../../etc", "/etc", ""},
		{Systemd, "kubepods-burstable-pod1.slice:berth:abc", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/berth-abc.scope", "berth-abc.scope"},
		{Systemd, "system.slice:berth:abc", "/system.slice/berth-abc.scope", "berth-abc.scope"},
		{Systemd, "kubepods-pod1.slice", "/kubepods.slice/kubepods-pod1.slice", "kubepods-pod1.slice"},
		{Systemd, "-.slice", "/", ""},
		{Systemd, "/not/a/slice", "/not/a/slice", ""},
	}
	for _, test := range tests {
		if got := HostPath(test.driver, test.in); got != test.want {
			t.Errorf("HostPath(%s, %q) = %q, want %q", test.driver, test.in, got, test.want)
		}
		if test.driver == Systemd {
			if got := unitName(test.in); got != test.unit {
				t.Errorf("unitName(%q) = %q, want %q", test.in, got, test.unit)
			}
		}
	}
}

func TestSliceDir(t *testing.T) {
	for in, want := range map[string]string{
		"-.slice":                       "/",
		"system.slice":                  "/system.slice",
		"kubepods-burstable-pod1.slice": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice",
		"kubepods.slice":                "/kubepods.slice",
	} {
		if got := SliceDir(in); got != want {
			t.Errorf("SliceDir(%q) = %q, want %q", in, got, want)
		}
	}
}
