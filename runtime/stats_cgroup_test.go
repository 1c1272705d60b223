package runtime

import "testing"

func TestCgroupfsPath(t *testing.T) {
	for _, test := range []struct{ in, want string }{
		{"/kubepods/burstable/pod1/abc", "/kubepods/burstable/pod1/abc"},
		{"kubepods-burstable-pod1.slice:berth:abc", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/berth-abc.scope"},
		{"system.slice:berth:abc", "/system.slice/berth-abc.scope"},
	} {
		if got := cgroupfsPath(test.in); got != test.want {
			t.Errorf("cgroupfsPath(%q) = %q, want %q", test.in, got, test.want)
		}
	}
}
