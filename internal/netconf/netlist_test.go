package netconf

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseNetList(t *testing.T) {
	cases := []struct {
		name   string
		values []string
		want   NetList
	}{
		{"empty", nil, NetList{Attachments: []Attachment{{Network: "default"}}}},
		{"default", []string{"default"}, NetList{Attachments: []Attachment{{Network: "default"}}}},
		{"none", []string{"none"}, NetList{None: true}},
		{"all", []string{"all"}, NetList{All: true}},
		{"name", []string{"lan"}, NetList{Attachments: []Attachment{{Network: "lan"}}}},
		{"args", []string{"lan:IP=10.1.0.5;K2=v-2"}, NetList{Attachments: []Attachment{
			{Network: "lan", Args: [][2]string{{"IP", "10.1.0.5"}, {"K2", "v-2"}}},
		}}},
		{"order", []string{"b,a", "c"}, NetList{Attachments: []Attachment{{Network: "b"}, {Network: "a"}, {Network: "c"}}}},
		{"spaces", []string{" a , b "}, NetList{Attachments: []Attachment{{Network: "a"}, {Network: "b"}}}},
		{"all with args", []string{"all,lan:IP=10.1.0.5"}, NetList{All: true, Attachments: []Attachment{
			{Network: "lan", Args: [][2]string{{"IP", "10.1.0.5"}}},
		}}},
		{"ipv6 value", []string{"lan:IP=fd00::5"}, NetList{Attachments: []Attachment{
			{Network: "lan", Args: [][2]string{{"IP", "fd00::5"}}},
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNetList(tc.values)
			if err != nil {
				t.Fatalf("ParseNetList(%q) error: %v", tc.values, err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParseNetList(%q) (-want +got):\n%s", tc.values, d)
			}
		})
	}
}

func TestParseNetListErrors(t *testing.T) {
	cases := []struct {
		name     string
		values   []string
		fragment string
	}{
		{"duplicate name", []string{"a,a"}, `network "a" given twice`},
		{"duplicate across values", []string{"a", "a"}, `network "a" given twice`},
		{"duplicate all", []string{"all,all"}, `"all" given twice`},
		{"duplicate none", []string{"none", "none"}, `"none" given twice`},
		{"none with name", []string{"none,a"}, `"none" cannot be combined`},
		{"none with all", []string{"all", "none"}, `"none" cannot be combined`},
		{"none with args", []string{"none:K=V"}, "takes no arguments"},
		{"empty entry", []string{"a,,b"}, "empty entry"},
		{"empty value", []string{""}, "empty entry"},
		{"slash in name", []string{"../x"}, "invalid network name"},
		{"space in name", []string{"a b"}, "invalid network name"},
		{"leading dash", []string{"-a"}, "invalid network name"},
		{"dollar", []string{"a$"}, "invalid network name"},
		{"arg without value", []string{"a:IP"}, "is not K=V"},
		{"arg without key", []string{"a:=1"}, "is not K=V"},
		{"empty arg", []string{"a:"}, "is not K=V"},
		{"bad arg key", []string{"a:I-P=1"}, "invalid argument name"},
		{"bad arg value", []string{"a:IP=1 2"}, "invalid value"},
		{"empty arg value", []string{"a:IP="}, "invalid value"},
		{"shell in arg value", []string{"a:IP=$(x)"}, "invalid value"},
		{"duplicate arg", []string{"a:IP=10.0.0.1;IP=10.0.0.2"}, "argument IP given twice"},
		{"too long", []string{strings.Repeat("a", MaxNetListLen+1)}, "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNetList(tc.values)
			if err == nil {
				t.Fatalf("ParseNetList(%q) = nil error, want one containing %q", tc.values, tc.fragment)
			}
			if !strings.Contains(err.Error(), tc.fragment) {
				t.Errorf("ParseNetList(%q) error %q, want it to contain %q", tc.values, err, tc.fragment)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	files := []*Network{
		mustParse(t, `{"name":"b-net","type":"ptp","ipam":{"type":"host-local"}}`),
		mustParse(t, `{"name":"a-net","type":"ptp","ipam":{"type":"host-local"}}`),
	}
	all := append(append([]*Network{}, files...), Builtins("/tmp/ipam")...)

	resolve := func(values ...string) ([]string, []Attachment, error) {
		t.Helper()
		list, err := ParseNetList(values)
		if err != nil {
			t.Fatalf("ParseNetList(%q): %v", values, err)
		}
		nets, atts, err := Resolve(list, files, all)
		var names []string
		for _, n := range nets {
			names = append(names, n.Name)
		}
		return names, atts, err
	}

	t.Run("all keeps file order", func(t *testing.T) {
		names, atts, err := resolve("all,a-net:IP=10.0.0.5")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"b-net", "a-net"}, names); d != "" {
			t.Errorf("networks (-want +got):\n%s", d)
		}
		wantAtts := []Attachment{{Network: "b-net"}, {Network: "a-net", Args: [][2]string{{"IP", "10.0.0.5"}}}}
		if d := cmp.Diff(wantAtts, atts); d != "" {
			t.Errorf("attachments (-want +got):\n%s", d)
		}
	})
	t.Run("names keep list order", func(t *testing.T) {
		names, _, err := resolve("default,a-net,default-restricted")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"default", "a-net", "default-restricted"}, names); d != "" {
			t.Errorf("networks (-want +got):\n%s", d)
		}
	})
	t.Run("none", func(t *testing.T) {
		names, atts, err := resolve("none")
		if err != nil || len(names) != 0 || len(atts) != 0 {
			t.Errorf("none resolved to %v, %v, %v; want nothing", names, atts, err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		_, _, err := resolve("nosuch")
		if err == nil || !strings.Contains(err.Error(), `unknown network "nosuch"`) || !strings.Contains(err.Error(), "a-net") {
			t.Errorf("error %v, want it to name nosuch and list the known networks", err)
		}
	})
	t.Run("all with built-in args", func(t *testing.T) {
		_, _, err := resolve("all,default:IP=172.16.28.9")
		if err == nil || !strings.Contains(err.Error(), `"default" is not in the net dirs`) {
			t.Errorf("error %v, want one saying default is not in the net dirs", err)
		}
	})
	t.Run("all without files", func(t *testing.T) {
		list, _ := ParseNetList([]string{"all"})
		_, _, err := Resolve(list, nil, Builtins("/tmp/ipam"))
		if err == nil || !strings.Contains(err.Error(), "none is configured") {
			t.Errorf("error %v, want one saying no network is configured", err)
		}
	})
}

func mustParse(t *testing.T, text string) *Network {
	t.Helper()
	n, err := Parse([]byte(text), "test")
	if err != nil {
		t.Fatalf("Parse(%s): %v", text, err)
	}
	return n
}

func TestParseNetListChecksIP(t *testing.T) {
	for _, spec := range []string{"default:IP=172.16.28.300", "default:ip=172.16.28.9", "default:IP=abc"} {
		if _, err := ParseNetList([]string{spec}); err == nil {
			t.Errorf("ParseNetList(%q) = nil error, want the IP argument rejected", spec)
		}
	}
	if _, err := ParseNetList([]string{"default:IP=172.16.28.9"}); err != nil {
		t.Errorf("ParseNetList with a valid IP = %v", err)
	}
}
