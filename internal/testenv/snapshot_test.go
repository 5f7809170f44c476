package testenv

import "testing"

func TestDiffEqual(t *testing.T) {
	s := Snapshot{
		Links:   []Link{{Name: "lo", Type: "loopback", MTU: 65536}},
		Ruleset: "table inet t {\n}\n",
		Sysctls: map[string]string{"net/ipv4/ip_forward": "0"},
	}
	if d := Diff(s, s); d != "" {
		t.Errorf("Diff of a snapshot with itself:\n%s", d)
	}
}

func TestDiffChanges(t *testing.T) {
	before := Snapshot{
		Links:   []Link{{Name: "lo", Type: "loopback", MTU: 65536}},
		Routes:  []string{"10.0.0.0/24 dev br0"},
		Sysctls: map[string]string{"net/ipv4/ip_forward": "0"},
	}
	after := Snapshot{
		Links:   []Link{{Name: "lo", Type: "loopback", MTU: 65536}, {Name: "kvmabc", Type: "tap", MTU: 1500, Alias: "kvmnet vm=a"}},
		Addrs:   []string{"kvmabc 10.0.0.1/24"},
		Sysctls: map[string]string{"net/ipv4/ip_forward": "1"},
	}
	want := "-route 10.0.0.0/24 dev br0\n" +
		"-sysctl net/ipv4/ip_forward=0\n" +
		"+link kvmabc type=tap master= mtu=1500 alias=\"kvmnet vm=a\"\n" +
		"+addr kvmabc 10.0.0.1/24\n" +
		"+sysctl net/ipv4/ip_forward=1\n"
	if got := Diff(before, after); got != want {
		t.Errorf("Diff:\n%s\nwant:\n%s", got, want)
	}
	wantWithout := "-route 10.0.0.0/24 dev br0\n" +
		"+link kvmabc type=tap master= mtu=1500 alias=\"kvmnet vm=a\"\n" +
		"+addr kvmabc 10.0.0.1/24\n"
	if got := Diff(before.Without("net/ipv4/ip_forward"), after.Without("net/ipv4/ip_forward")); got != wantWithout {
		t.Errorf("Diff without ip_forward:\n%s\nwant:\n%s", got, wantWithout)
	}
}

func TestDiffCountsRepeatedLines(t *testing.T) {
	before := Snapshot{Ruleset: "counter\n"}
	after := Snapshot{Ruleset: "counter\ncounter\n"}
	if got, want := Diff(before, after), "+nft counter\n"; got != want {
		t.Errorf("Diff = %q, want %q", got, want)
	}
}
