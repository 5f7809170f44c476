package netconf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeFiles creates files in a new temporary directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(nets []*Network) []string {
	out := []string{}
	for _, n := range nets {
		out = append(out, n.Name)
	}
	return out
}

const ptpText = `{"cniVersion":"1.0.0","name":"%s","type":"ptp","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}`

func ptp(name string) string { return strings.Replace(ptpText, "%s", name, 1) }

func TestLoadOrder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"20-b.conf":     ptp("b"),
		"10-c.conflist": `{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"ptp","ipam":{"type":"host-local"}}]}`,
		"30-a.json":     ptp("a"),
		"05-x.txt":      ptp("ignored"),
		"00-notes":      "not a config",
	})
	if err := os.Mkdir(filepath.Join(dir, "01-dir.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	second := writeFiles(t, map[string]string{"00-d.conf": ptp("d")})

	files, all, err := Load([]string{dir, filepath.Join(dir, "missing"), second}, "/ipam")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"c", "b", "a", "d"}, names(files)); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"c", "b", "a", "d", "default", "default-restricted"}, names(all)); d != "" {
		t.Errorf("all (-want +got):\n%s", d)
	}
	if files[0].Source != filepath.Join(dir, "10-c.conflist") {
		t.Errorf("source %q, want the file path", files[0].Source)
	}
}

func TestLoadOverridesBuiltin(t *testing.T) {
	dir := writeFiles(t, map[string]string{"10-default.conf": ptp("default")})
	files, all, err := Load([]string{dir}, "/ipam")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"default"}, names(files)); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"default", "default-restricted"}, names(all)); d != "" {
		t.Errorf("all (-want +got):\n%s", d)
	}
	if all[0].Source == "built-in" || all[0].Conf.IPMasq {
		t.Errorf("default network is %+v, want the file's", all[0])
	}
}

func TestLoadDuplicateName(t *testing.T) {
	dir := writeFiles(t, map[string]string{"10-a.conf": ptp("same"), "20-b.conflist": `{"name":"same","plugins":[{"type":"ptp","ipam":{"type":"host-local"}}]}`})
	files, all, err := Load([]string{dir}, "/ipam")
	if err != nil {
		t.Fatalf("Load = %v, want the error on the networks only", err)
	}
	list, _ := ParseNetList([]string{"same"})
	_, _, err = Resolve(list, files, all)
	if err == nil {
		t.Fatal("Resolve accepted a network defined by two files")
	}
	for _, want := range []string{`"same"`, "10-a.conf", "20-b.conflist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestLoadTooLarge(t *testing.T) {
	dir := writeFiles(t, map[string]string{"10-big.conf": ptp("big") + strings.Repeat(" ", MaxConfigSize)})
	files, _, err := Load([]string{dir}, "/ipam")
	if err != nil {
		t.Fatalf("Load = %v, want the error on the network only", err)
	}
	if len(files) != 1 || files[0].Err == nil || !strings.Contains(files[0].Err.Error(), "larger than") {
		t.Errorf("files %+v, want one network whose error says the file is too large", files)
	}
}

func TestBadFileFailsOnlyItsNetwork(t *testing.T) {
	dir := writeFiles(t, map[string]string{"00-bad.conf": `{bad json`, "10-good.conf": ptp("good")})
	files, all, err := Load([]string{dir}, "/ipam")
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	for _, name := range []string{"good", "default"} {
		list, _ := ParseNetList([]string{name})
		if _, _, err := Resolve(list, files, all); err != nil {
			t.Errorf("Resolve(%s) = %v, want the bad file to be ignored", name, err)
		}
	}
	list, _ := ParseNetList([]string{"00-bad"})
	if _, _, err := Resolve(list, files, all); err == nil || !strings.Contains(err.Error(), "00-bad.conf") {
		t.Errorf("Resolve(00-bad) = %v, want the parse error naming the file", err)
	}
	list, _ = ParseNetList([]string{"all"})
	if _, _, err := Resolve(list, files, all); err == nil {
		t.Error("Resolve(all) accepted a net dir with a bad file")
	}
}

func TestParseConflist(t *testing.T) {
	n, err := Parse([]byte(`{"cniVersion":"1.1.0","name":"list","plugins":[
		{"cniVersion":"0.3.1","name":"inner","type":"bridge","bridge":"br9","ipam":{"type":"host-local"}},
		{"type":"portmap","capabilities":{"portMappings":true}}]}`), "list.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "list" || n.Conf.CNIVersion != "1.1.0" || n.Conf.Type != "bridge" || !n.Portmap {
		t.Errorf("network %+v, want name list, cniVersion 1.1.0 from the list, type bridge, port mappings", n)
	}
	var bytes map[string]any
	if err := json.Unmarshal(n.Bytes, &bytes); err != nil {
		t.Fatal(err)
	}
	if bytes["name"] != "list" || bytes["cniVersion"] != "1.1.0" || bytes["bridge"] != "br9" {
		t.Errorf("config bytes %s, want the list's name and version and the plugin's fields", n.Bytes)
	}
}

func TestParseDefaultsVersion(t *testing.T) {
	n := mustParse(t, `{"name":"old","type":"ptp","ipam":{"type":"host-local"}}`)
	if n.Conf.CNIVersion != "0.4.0" {
		t.Errorf("cniVersion %q, want 0.4.0 when the config has none", n.Conf.CNIVersion)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, text string
		fragments  []string
	}{
		{"invalid JSON", `{"name":`, []string{"parse network config src"}},
		{"not an object", `[1]`, []string{"parse network config src"}},
		{"null", `null`, []string{"null where a JSON object is required"}},
		{"null plugin", `{"name":"n","plugins":[null]}`, []string{"null where a JSON object is required"}},
		{"chained plugin", `{"name":"n","plugins":[{"type":"ptp","ipam":{"type":"host-local"}},{"type":"bandwidth"}]}`,
			[]string{`chains plugin "bandwidth"`, "only portmap"}},
		{"empty plugins", `{"name":"n","plugins":[]}`, []string{"has no plugins"}},
		{"plugins not a list", `{"name":"n","plugins":{}}`, []string{"parse network config list src"}},
		{"mtu string", `{"name":"n","type":"ptp","mtu":"1400","ipam":{"type":"host-local"}}`, []string{`field "mtu"`, "number", "string"}},
		{"ipMasq string", `{"name":"n","type":"ptp","ipMasq":"true","ipam":{"type":"host-local"}}`, []string{`field "ipMasq"`, "boolean"}},
		{"isDefaultGateway number", `{"name":"n","type":"bridge","isDefaultGateway":1,"ipam":{"type":"host-local"}}`, []string{`field "isDefaultGateway"`, "boolean", "number"}},
		{"ipam string", `{"name":"n","type":"ptp","ipam":"host-local"}`, []string{`field "ipam"`, "object"}},
		{"routes object", `{"name":"n","type":"ptp","ipam":{"type":"host-local","routes":{}}}`, []string{`field "ipam.routes"`, "array"}},
		{"no name", `{"type":"ptp","ipam":{"type":"host-local"}}`, []string{"has no name"}},
		{"bad name", `{"name":"a/b","type":"ptp","ipam":{"type":"host-local"}}`, []string{"invalid network name"}},
		{"missing ipam", `{"name":"n","type":"ptp"}`, []string{"missing ipam type"}},
		{"ipam path", `{"name":"n","type":"ptp","ipam":{"type":"../host-local"}}`, []string{"invalid ipam type", "not a path"}},
		{"unsupported type", `{"name":"n","type":"vlan","ipam":{"type":"host-local"}}`, []string{`unsupported type "vlan"`, "ptp, bridge, macvlan, flannel"}},
		{"mtu too small", `{"name":"n","type":"ptp","mtu":67,"ipam":{"type":"host-local"}}`, []string{"mtu 67 is out of range"}},
		{"mtu too large", `{"name":"n","type":"ptp","mtu":65536,"ipam":{"type":"host-local"}}`, []string{"mtu 65536 is out of range"}},
		{"negative mtu", `{"name":"n","type":"ptp","mtu":-1,"ipam":{"type":"host-local"}}`, []string{"mtu -1 is out of range"}},
		{"long bridge", `{"name":"n","type":"bridge","bridge":"abcdefghijklmnop","ipam":{"type":"host-local"}}`, []string{"16 bytes"}},
		{"macvlan without master", `{"name":"n","type":"macvlan","ipam":{"type":"host-local"}}`, []string{`needs a "master"`}},
		{"macvlan mode", `{"name":"n","type":"macvlan","master":"eth0","mode":"x","ipam":{"type":"host-local"}}`, []string{`invalid macvlan mode "x"`}},
		{"ptp default gateway", `{"name":"n","type":"ptp","isDefaultGateway":true,"ipam":{"type":"host-local"}}`, []string{"bridge networks only"}},
		{"bad route", `{"name":"n","type":"ptp","ipam":{"type":"host-local","routes":[{"dst":"x"}]}}`, []string{`invalid ipam route dst "x"`}},
		{"bad route gw", `{"name":"n","type":"ptp","ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0","gw":"y"}]}}`, []string{`invalid ipam route gw "y"`}},
		{"two default routes", `{"name":"n","type":"ptp","ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0"},{"dst":"0.0.0.0/0","gw":"10.0.0.9"}]}}`,
			[]string{"more than one default route", "0.0.0.0/0 and", "0.0.0.0/0 via 10.0.0.9"}},
		{"default gateway and route", `{"name":"n","type":"bridge","isDefaultGateway":true,"ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.254"}]}}`,
			[]string{"more than one default route", "0.0.0.0/0 via 10.0.0.254", "isDefaultGateway"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "src")
			if err == nil {
				t.Fatalf("Parse(%s) = nil error", tc.text)
			}
			for _, f := range tc.fragments {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q, want it to contain %q", err, f)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	cases := []struct{ name, text string }{
		{"one route per family", `{"name":"n","type":"ptp","ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}`},
		{"flannel without ipam", `{"name":"n","type":"flannel"}`},
		{"macvlan passthru", `{"name":"n","type":"macvlan","master":"eth0","mode":"passthru","ipam":{"type":"dhcp"}}`},
		{"mtu bounds", `{"name":"n","type":"ptp","mtu":68,"ipam":{"type":"host-local"}}`},
		{"unknown fields", `{"name":"n","type":"ptp","future":{"x":1},"ipam":{"type":"host-local","extra":[1]}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.text), "src"); err != nil {
				t.Errorf("Parse(%s): %v", tc.text, err)
			}
		})
	}
}

func TestDefaultRouteSources(t *testing.T) {
	n := mustParse(t, `{"name":"n","type":"bridge","isDefaultGateway":true,
		"ipam":{"type":"host-local","routes":[{"dst":"::/0","gw":"fd00::1"},{"dst":"10.0.0.0/8"}]}}`)
	want := map[int][]string{
		4: {`network "n" isDefaultGateway`},
		6: {`network "n" ipam route ::/0 via fd00::1`},
	}
	if d := cmp.Diff(want, n.DefaultRouteSources()); d != "" {
		t.Errorf("DefaultRouteSources (-want +got):\n%s", d)
	}
}

func TestAntiSpoofDefault(t *testing.T) {
	if !mustParse(t, `{"name":"n","type":"ptp","ipam":{"type":"host-local"}}`).AntiSpoof() {
		t.Error("AntiSpoof() = false without a kvmnet section, want true")
	}
	if mustParse(t, `{"name":"n","type":"ptp","kvmnet":{"antiSpoof":false},"ipam":{"type":"host-local"}}`).AntiSpoof() {
		t.Error("AntiSpoof() = true with antiSpoof false")
	}
}

func TestBuiltins(t *testing.T) {
	type ipam struct {
		Type    string  `json:"type"`
		DataDir string  `json:"dataDir"`
		Subnet  string  `json:"subnet"`
		Routes  []Route `json:"routes"`
	}
	type conf struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Type       string `json:"type"`
		IPMasq     bool   `json:"ipMasq"`
		IPAM       ipam   `json:"ipam"`
	}
	want := map[string]conf{
		"default": {CNIVersion: "1.0.0", Name: "default", Type: "ptp", IPMasq: true,
			IPAM: ipam{Type: "host-local", DataDir: "/state/ipam", Subnet: "172.16.28.0/24", Routes: []Route{{Dst: "0.0.0.0/0"}}}},
		"default-restricted": {CNIVersion: "1.0.0", Name: "default-restricted", Type: "ptp",
			IPAM: ipam{Type: "host-local", DataDir: "/state/ipam", Subnet: "172.31.0.0/16"}},
	}
	nets := Builtins("/state/ipam")
	if d := cmp.Diff([]string{"default", "default-restricted"}, names(nets)); d != "" {
		t.Fatalf("built-ins (-want +got):\n%s", d)
	}
	for _, n := range nets {
		var got conf
		if err := json.Unmarshal(n.Bytes, &got); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want[n.Name], got); d != "" {
			t.Errorf("built-in %s (-want +got):\n%s", n.Name, d)
		}
		if n.Source != "built-in" || n.Portmap {
			t.Errorf("built-in %s: source %q, port mappings %v", n.Name, n.Source, n.Portmap)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, name := range []string{"a", "net-1", "A.b_c", strings.Repeat("n", 128)} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "-a", "_a", ".a", "a/b", "a b", "ä", strings.Repeat("n", 129)} {
		if err := ValidateName(name); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", name)
		}
	}
}
