package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kvmnet/kvmnet"
	"github.com/kvmnet/kvmnet/internal/netconf"
)

// cliDirs are the state and net dirs of one test, under t.TempDir().
type cliDirs struct {
	root, state, net string
}

func newCLIDirs(t *testing.T) cliDirs {
	t.Helper()
	root := t.TempDir()
	d := cliDirs{root: root, state: filepath.Join(root, "state"), net: filepath.Join(root, "net.d")}
	if err := os.Mkdir(d.net, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// runCLI runs the command with the test's dirs and a CNI path that holds
// no plugin, so no test here reaches the kernel or an IPAM plugin.
func runCLI(t *testing.T, d cliDirs, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	full := append([]string{"--state-dir", d.state, "--net-dir", d.net, "--cni-path", filepath.Join(d.root, "no-plugins")}, args...)
	var out, errOut bytes.Buffer
	code = run(context.Background(), full, &out, &errOut)
	return code, out.String(), errOut.String()
}

// stateFiles lists the files in the state dir; a missing dir has none.
func stateFiles(t *testing.T, d cliDirs) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(d.state, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

// hasErrorLine reports whether stderr has a line starting with "kvmnet: ".
func hasErrorLine(stderr string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "kvmnet: ") {
			return true
		}
	}
	return false
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		fragment string
	}{
		{"no command", nil, 2, "missing command"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown global flag", []string{"--bogus", "list"}, 2, "unknown option --bogus"},
		{"unknown up flag", []string{"up", "vm-1", "--bogus"}, 2, "unknown option --bogus"},
		{"flag without value", []string{"up", "vm-1", "--net"}, 2, "missing value for --net"},
		{"bad boolean", []string{"up", "vm-1", "--json=maybe"}, 2, `invalid --json "maybe": want true or false`},
		{"bad short boolean", []string{"-v=x", "list"}, 2, `invalid -v "x": want true or false`},
		{"queue count word", []string{"up", "vm-1", "--queues", "x"}, 2, `invalid --queues "x": want a whole number from 1 to 256`},
		{"queue count zero", []string{"up", "vm-1", "--queues", "0"}, 2, `invalid --queues "0": want a whole number from 1 to 256`},
		{"queue count too large", []string{"up", "vm-1", "--queues", "257"}, 2, `invalid --queues "257"`},
		{"json and format", []string{"up", "vm-1", "--json", "--format", "qemu"}, 2, "--json and --format qemu conflict"},
		{"unknown format", []string{"up", "vm-1", "--format", "vmware"}, 2, `unknown format "vmware"`},
		{"up without id", []string{"up"}, 2, "up takes one VM id, got 0"},
		{"up with two ids", []string{"up", "a", "b"}, 2, "up takes one VM id, got 2"},
		{"negative tap owner", []string{"up", "vm-1", "--tap-owner", "-5"}, 2, `invalid --tap-owner "-5": want a whole number from 0 to 4294967294`},
		{"tap owner word", []string{"up", "vm-1", "--tap-owner", "abc"}, 2, `invalid --tap-owner "abc"`},
		{"negative tap group", []string{"up", "vm-1", "--tap-group", "-1"}, 2, `invalid --tap-group "-1"`},
		{"invalid dns", []string{"up", "vm-1", "--dns", "dns.example"}, 2, `invalid --dns "dns.example"`},
		{"invalid hostname", []string{"up", "vm-1", "--format", "kernel-args", "--hostname", "bad host!"}, 2, `--hostname: invalid host name "bad host!"`},
		{"show invalid hostname", []string{"show", "vm-1", "--format", "kernel-args", "--hostname", "a_b"}, 2, `--hostname: invalid host name "a_b"`},
		{"port without guest port", []string{"up", "vm-1", "--port", "80"}, 2, `invalid --port "80": want [NET:][HOSTIP:]HOSTPORT:GUESTPORT`},
		{"port word", []string{"up", "vm-1", "--port", "abc:80"}, 2, `invalid --port "abc:80"`},
		{"port too large", []string{"up", "vm-1", "--port", "70000:80"}, 2, `invalid --port "70000:80"`},
		{"port zero", []string{"up", "vm-1", "--port", "0:80"}, 2, `invalid --port "0:80"`},
		{"port protocol", []string{"up", "vm-1", "--port", "8085:80/sctp"}, 2, `invalid --port "8085:80/sctp": protocol "sctp" is not tcp or udp`},
		{"port ranges differ", []string{"up", "vm-1", "--port", "8000-8002:80-81"}, 2, `invalid --port "8000-8002:80-81"`},
		{"port network not attached", []string{"up", "vm-1", "--net", "default", "--port", "lan:8080:80"}, 2, `invalid --port "lan:8080:80": network "lan" is not in the --net list`},
		{"port without network", []string{"up", "vm-1", "--net", "none", "--port", "8080:80"}, 2, `invalid --port "8080:80": --net none attaches no network`},
		{"net arg without value", []string{"up", "vm-1", "--net", "default:IP"}, 2, `invalid --net entry "default:IP"`},
		{"net empty entry", []string{"up", "vm-1", "--net", ","}, 2, "invalid --net value"},
		{"up with bad net list", []string{"up", "vm-1", "--net", "none,default"}, 2, `"none" cannot be combined`},
		{"up with path id", []string{"up", "../../etc/x"}, 2, "invalid VM id"},
		{"up with empty id", []string{"up", ""}, 2, "invalid VM id: empty"},
		{"up with long id", []string{"up", strings.Repeat("v", 300)}, 2, "invalid VM id"},
		{"up with non-ASCII id", []string{"up", "é"}, 2, `character 'é' at byte 0`},
		{"down without id", []string{"down"}, 2, "down takes one VM id"},
		{"down with path id", []string{"down", "../x"}, 2, "invalid VM id"},
		{"show with path id", []string{"show", "a/b"}, 2, "invalid VM id"},
		{"list with argument", []string{"list", "x"}, 2, "list takes no arguments"},
		{"networks with argument", []string{"networks", "x"}, 2, "networks takes no arguments"},
		{"version with argument", []string{"version", "x"}, 2, "version takes no arguments"},
		{"up with missing net dir", []string{"--net-dir", "/nonexistent/kvmnet-net.d", "up", "vm-1"}, 2, "net dir /nonexistent/kvmnet-net.d (from --net-dir) not found"},
		{"networks with missing net dir", []string{"networks", "--net-dir", "/nonexistent/kvmnet-net.d"}, 2, "net dir /nonexistent/kvmnet-net.d (from --net-dir) not found"},
		{"gc with missing net dir", []string{"gc", "--net-dir", "/nonexistent/kvmnet-net.d"}, 2, "not found"},
		{"net dir is a file", []string{"networks", "--net-dir", "/dev/null"}, 2, "net dir /dev/null (from --net-dir) is not a directory"},
		{"up with unknown network", []string{"up", "vm-1", "--net", "nosuch"}, 1, `unknown network "nosuch"`},
		{"show unknown vm", []string{"show", "vm-9"}, 1, "vm-9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newCLIDirs(t)
			code, _, stderr := runCLI(t, d, tc.args...)
			if code != tc.code {
				t.Errorf("kvmnet %q exit status %d, want %d; stderr:\n%s", tc.args, code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.fragment) {
				t.Errorf("kvmnet %q stderr %q, want it to contain %q", tc.args, stderr, tc.fragment)
			}
			for _, internal := range []string{"flag -", "invalid firewall input", "port spec"} {
				if strings.Contains(stderr, internal) {
					t.Errorf("kvmnet %q stderr %q, want no %q in a message", tc.args, stderr, internal)
				}
			}
			if !hasErrorLine(stderr) {
				t.Errorf("kvmnet %q stderr %q, want an error line starting with \"kvmnet: \"", tc.args, stderr)
			}
			if tc.code == 2 && !strings.Contains(stderr, "kvmnet help") {
				t.Errorf("kvmnet %q stderr %q, want a pointer to kvmnet help", tc.args, stderr)
			}
			if files := stateFiles(t, d); len(files) != 0 {
				t.Errorf("kvmnet %q left files in the state dir: %v", tc.args, files)
			}
			if _, err := os.Stat(filepath.Join(d.root, "etc")); err == nil {
				t.Errorf("kvmnet %q created a directory outside the state dir", tc.args)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		d := newCLIDirs(t)
		code, stdout, stderr := runCLI(t, d, args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") || stderr != "" {
			t.Errorf("kvmnet %q: exit status %d, stdout %q, stderr %q; want 0 and usage on stdout", args, code, stdout, stderr)
		}
	}
}

func TestNetworksCommand(t *testing.T) {
	d := newCLIDirs(t)
	conf := `{"cniVersion":"1.0.0","name":"lan","type":"bridge","ipam":{"type":"host-local","subnet":"10.9.0.0/24"}}`
	if err := os.WriteFile(filepath.Join(d.net, "10-lan.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, d, "networks", "--json")
	if code != 0 {
		t.Fatalf("networks --json: exit status %d, stderr %s", code, stderr)
	}
	var rows []struct{ Name, Type, Source string }
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("networks --json output %q: %v", stdout, err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name+"/"+r.Type)
	}
	if got, want := strings.Join(names, " "), "lan/bridge default/ptp default-restricted/ptp"; got != want {
		t.Errorf("networks: %q, want %q", got, want)
	}
}

func TestInvalidConfigFile(t *testing.T) {
	cases := []struct {
		name, text string
		// network is the name the bad file's network is listed under.
		network string
	}{
		{"null", "null", "10-bad"},
		{"truncated", `{"name":`, "10-bad"},
		{"wrong type", `{"name":"n","type":"ptp","mtu":"9000","ipam":{"type":"host-local"}}`, "n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newCLIDirs(t)
			if err := os.WriteFile(filepath.Join(d.net, "10-bad.conf"), []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}

			code, stdout, stderr := runCLI(t, d, "networks")
			if code != 1 {
				t.Errorf("networks: exit status %d, want 1; stderr %q", code, stderr)
			}
			if !strings.Contains(stderr, "1 of 3 network configs are invalid") {
				t.Errorf("networks stderr %q, want the count of invalid configs", stderr)
			}
			lines := strings.Split(stdout, "\n")
			if !strings.Contains(lines[0], "ERROR") {
				t.Errorf("networks header %q, want an ERROR column", lines[0])
			}
			if !strings.Contains(stdout, tc.network+"  ") || !strings.Contains(stdout, "10-bad.conf") {
				t.Errorf("networks output lacks network %q of 10-bad.conf:\n%s", tc.network, stdout)
			}
			if !strings.Contains(stdout, "default ") {
				t.Errorf("networks output lacks the built-in networks:\n%s", stdout)
			}

			code, _, stderr = runCLI(t, d, "up", "vm-1", "--net", tc.network)
			if code != 1 || !strings.Contains(stderr, "10-bad.conf") {
				t.Errorf("up --net %s: exit status %d, stderr %q; want 1 and the file named", tc.network, code, stderr)
			}
			_, _, stderr = runCLI(t, d, "up", "vm-1")
			if strings.Contains(stderr, "10-bad.conf") {
				t.Errorf("up on the default network failed on the bad file: %q", stderr)
			}
			if files := stateFiles(t, d); len(files) != 0 {
				t.Errorf("files left in the state dir: %v", files)
			}
		})
	}
}

func TestNetworksJSONNamesError(t *testing.T) {
	d := newCLIDirs(t)
	if err := os.WriteFile(filepath.Join(d.net, "10-bad.conf"), []byte("{bad json"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runCLI(t, d, "networks", "--json")
	if code != 1 {
		t.Errorf("networks --json: exit status %d, want 1", code)
	}
	var rows []struct{ Name, Type, Source, Error string }
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("networks --json output %q: %v", stdout, err)
	}
	if len(rows) != 3 || rows[0].Name != "10-bad" || !strings.Contains(rows[0].Error, "10-bad.conf") {
		t.Errorf("networks --json rows %+v, want 10-bad with its error first", rows)
	}
	if rows[1].Error != "" || rows[2].Error != "" {
		t.Errorf("built-in networks have errors: %+v", rows[1:])
	}
}

func TestListEmpty(t *testing.T) {
	d := newCLIDirs(t)
	code, stdout, stderr := runCLI(t, d, "list", "--json")
	if code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("list --json on an empty state dir: exit status %d, stdout %q, stderr %q; want 0 and []", code, stdout, stderr)
	}
}

func TestDownUnknownVM(t *testing.T) {
	d := newCLIDirs(t)
	if code, _, stderr := runCLI(t, d, "down", "never-was"); code != 0 {
		t.Errorf("down of an unknown id: exit status %d, stderr %q; want 0", code, stderr)
	}
	if files := stateFiles(t, d); len(files) != 0 {
		t.Errorf("down of an unknown id left files: %v", files)
	}
}

func TestTapOwnerErrorNamesOnlyGivenFlag(t *testing.T) {
	d := newCLIDirs(t)
	_, _, stderr := runCLI(t, d, "up", "vm-1", "--tap-owner", "-5")
	if strings.Contains(stderr, "tap-group") {
		t.Errorf("stderr %q names --tap-group, which was not given", stderr)
	}
}

func TestNetDirFromEnvMustExist(t *testing.T) {
	d := newCLIDirs(t)
	t.Setenv("KVMNET_NET_DIR", d.net+":"+filepath.Join(d.root, "missing"))
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--state-dir", d.state, "networks"}, &out, &errOut)
	if code != 2 {
		t.Errorf("exit status %d, want 2; stderr %q", code, errOut.String())
	}
	want := "net dir " + filepath.Join(d.root, "missing") + " (from KVMNET_NET_DIR) not found"
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q, want it to contain %q", errOut.String(), want)
	}
}

func TestDefaultNetDirMayBeMissing(t *testing.T) {
	t.Setenv("KVMNET_NET_DIR", "")
	g := &globals{}
	if err := g.checkNetDirs(); err != nil {
		t.Errorf("checkNetDirs with the default dir: %v, want nil", err)
	}
}

func TestDownIgnoresMissingNetDir(t *testing.T) {
	d := newCLIDirs(t)
	code, _, stderr := runCLI(t, d, "--net-dir", filepath.Join(d.root, "gone"), "down", "vm-1")
	if code != 0 {
		t.Errorf("down with a missing net dir: exit status %d, stderr %q; want 0", code, stderr)
	}
}

func TestListEmptyPrintsHeader(t *testing.T) {
	d := newCLIDirs(t)
	code, stdout, stderr := runCLI(t, d, "list")
	if code != 0 {
		t.Fatalf("list: exit status %d, stderr %q", code, stderr)
	}
	if got, want := strings.Fields(stdout), []string{"VM", "PHASE", "NETWORKS", "DEVICES", "ADDRESSES"}; !slices.Equal(got, want) {
		t.Errorf("list with no VM printed %q, want only the header", stdout)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		d := newCLIDirs(t)
		code, stdout, stderr := runCLI(t, d, args...)
		if code != 0 {
			t.Errorf("kvmnet %q: exit status %d, stderr %q", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "kvmnet ") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("kvmnet %q printed %q, want one line \"kvmnet VERSION\"", args, stdout)
		}
	}
}

func TestHelpShowsFullUpSynopsis(t *testing.T) {
	d := newCLIDirs(t)
	_, stdout, _ := runCLI(t, d, "help")
	for _, want := range []string{"[--port SPEC]...", "[--tap-owner UID]", "[--tap-group GID]", "[--queues N]",
		"[--no-vnet-hdr]", "[--hostname NAME]", "Output options of up and show:", "kvmnet version"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	for _, line := range strings.Split(stdout, "\n") {
		if len(line) > 80 {
			t.Errorf("help line of %d bytes, want at most 80: %q", len(line), line)
		}
	}
}

func TestWrapWords(t *testing.T) {
	got := wrapWords([]string{"alpha", "beta", "gamma"}, "  ", 14)
	if want := "  alpha, beta,\n  gamma"; got != want {
		t.Errorf("wrapWords = %q, want %q", got, want)
	}
}

// fakeManager records the calls of the commands and returns canned values.
type fakeManager struct {
	networks []*netconf.Network
	result   *kvmnet.Result
	downErr  error

	upCalls   []kvmnet.UpRequest
	downCalls []string
}

func (f *fakeManager) Up(_ context.Context, req kvmnet.UpRequest) (*kvmnet.Result, error) {
	f.upCalls = append(f.upCalls, req)
	res := *f.result
	res.VM = req.VM
	return &res, nil
}

func (f *fakeManager) Down(_ context.Context, id string) error {
	f.downCalls = append(f.downCalls, id)
	return f.downErr
}

func (f *fakeManager) Show(id string) (*kvmnet.Result, error) {
	res := *f.result
	res.VM = id
	return &res, nil
}

func (f *fakeManager) List() ([]kvmnet.Summary, error) { return []kvmnet.Summary{}, nil }

func (f *fakeManager) Networks() ([]*netconf.Network, error) { return f.networks, nil }

func (f *fakeManager) GC(context.Context, bool) ([]kvmnet.GCItem, error) { return nil, nil }

// newFakeManager returns a manager whose Networks lists the built-in default
// network, a bridge network "lan" and a macvlan network "mv", and whose Up
// returns one ptp interface with two forwarded ports.
func newFakeManager() *fakeManager {
	guest := netip.MustParseAddr("172.16.28.2")
	return &fakeManager{
		networks: []*netconf.Network{
			{Name: "lan", Source: "/etc/kvmnet/net.d/10-lan.conf", Conf: netconf.Conf{Type: "bridge"}},
			{Name: "mv", Source: "/etc/kvmnet/net.d/20-mv.conf", Conf: netconf.Conf{Type: "macvlan"}},
			{Name: "default", Source: "built-in", Conf: netconf.Conf{Type: "ptp"}},
		},
		result: &kvmnet.Result{
			Interfaces: []kvmnet.Interface{{
				Network: "default", Type: "ptp", HostDevice: "kvmaaaaaaaaaaaa", GuestDevice: "eth0",
				MAC: "02:00:00:00:00:01", MTU: 1500, Queues: 1, VnetHdr: true,
				Addresses: []netip.Prefix{netip.MustParsePrefix("172.16.28.2/24")},
				Gateways:  []netip.Addr{netip.MustParseAddr("172.16.28.1")},
				Routes:    []kvmnet.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: netip.MustParseAddr("172.16.28.1")}},
				Ports: []kvmnet.Port{
					{Proto: "tcp", HostPort: 8080, HostPortEnd: 8080, GuestIP: guest, GuestPort: 80},
					{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9000, HostPortEnd: 9001, GuestIP: guest, GuestPort: 7},
				},
			}},
		},
	}
}

// runFake runs the command line against f, with a net dir that exists.
func runFake(t *testing.T, f *fakeManager, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, openManager: func(kvmnet.Options) (manager, error) { return f, nil }}
	full := append([]string{"--net-dir", t.TempDir()}, args...)
	code = c.run(context.Background(), full)
	return code, out.String(), errOut.String()
}

func TestUpTableShowsPorts(t *testing.T) {
	f := newFakeManager()
	code, stdout, stderr := runFake(t, f, "up", "web-1")
	if code != 0 {
		t.Fatalf("up: exit status %d, stderr %q", code, stderr)
	}
	lines := map[string]bool{}
	for _, line := range strings.Split(stdout, "\n") {
		lines[strings.Join(strings.Fields(line), " ")] = true
	}
	for _, want := range []string{
		"HOST PORT GUEST PORT PROTO GUEST NETWORK",
		"*:8080 172.16.28.2:80 tcp eth0 default",
		"127.0.0.1:9000-9001 172.16.28.2:7-8 tcp eth0 default",
	} {
		if !lines[want] {
			t.Errorf("up output lacks the line %q:\n%s", want, stdout)
		}
	}
}

func TestShowTableWithoutPorts(t *testing.T) {
	f := newFakeManager()
	f.result.Interfaces[0].Ports = nil
	code, stdout, stderr := runFake(t, f, "show", "web-1")
	if code != 0 {
		t.Fatalf("show: exit status %d, stderr %q", code, stderr)
	}
	if strings.Contains(stdout, "HOST PORT") {
		t.Errorf("show without ports printed a port table:\n%s", stdout)
	}
}

func TestHostPortFormats(t *testing.T) {
	cases := []struct {
		addr        string
		first, last uint16
		want        string
	}{
		{"", 80, 80, "*:80"},
		{"127.0.0.1", 8000, 8009, "127.0.0.1:8000-8009"},
		{"::1", 8080, 8080, "[::1]:8080"},
	}
	for _, tc := range cases {
		var addr netip.Addr
		if tc.addr != "" {
			addr = netip.MustParseAddr(tc.addr)
		}
		if got := hostPort(addr, tc.first, tc.last); got != tc.want {
			t.Errorf("hostPort(%q, %d, %d) = %q, want %q", tc.addr, tc.first, tc.last, got, tc.want)
		}
	}
}

func TestShowJSONHasPorts(t *testing.T) {
	f := newFakeManager()
	code, stdout, stderr := runFake(t, f, "show", "web-1", "--json")
	if code != 0 {
		t.Fatalf("show --json: exit status %d, stderr %q", code, stderr)
	}
	var res kvmnet.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("show --json output %q: %v", stdout, err)
	}
	if diff := cmp.Diff(f.result.Interfaces[0].Ports, res.Interfaces[0].Ports, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("ports in JSON (-want +got):\n%s", diff)
	}
}

func TestShowResolvConfWithoutDNS(t *testing.T) {
	f := newFakeManager()
	code, stdout, stderr := runFake(t, f, "show", "web-1", "--format", "resolv.conf")
	if code != 0 || stdout != "# no DNS settings\n" {
		t.Errorf("show --format resolv.conf: exit status %d, stdout %q, stderr %q; want 0 and the no-DNS comment", code, stdout, stderr)
	}
}

func TestUpChecksFormatBeforeUp(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		fragment string
	}{
		{"firecracker multiqueue", []string{"up", "q1", "--queues", "2", "--format", "firecracker"}, "firecracker uses one queue pair"},
		{"firecracker macvtap", []string{"up", "m1", "--net", "mv", "--format", "firecracker"}, "firecracker opens only tap devices"},
		{"lkvm multiqueue tap", []string{"up", "q2", "--net", "lan", "--queues", "4", "--format", "lkvm"}, "kvmtool opens taps without multiqueue"},
		{"lkvm multiqueue on all", []string{"up", "q3", "--net", "all", "--queues", "2", "--format", "lkvm"}, "kvmtool opens taps without multiqueue"},
		{"hostname", []string{"up", "h1", "--format", "kernel-args", "--hostname", "bad host!"}, "invalid host name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeManager()
			code, _, stderr := runFake(t, f, tc.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr %q", code, stderr)
			}
			if !strings.Contains(stderr, tc.fragment) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tc.fragment)
			}
			if len(f.upCalls) != 0 {
				t.Errorf("Up was called %d times, want 0", len(f.upCalls))
			}
		})
	}
}

func TestUpAllowsWhatFormatAttaches(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"lkvm multiqueue macvtap", []string{"up", "m2", "--net", "mv", "--queues", "2", "--format", "lkvm"}},
		{"qemu multiqueue", []string{"up", "q4", "--net", "default,mv", "--queues", "4", "--format", "qemu"}},
		{"firecracker single queue", []string{"up", "f1", "--format", "firecracker", "--hostname", "f1"}},
		{"unknown network left to up", []string{"up", "u1", "--net", "nosuch", "--queues", "2", "--format", "firecracker"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeManager()
			f.result.Interfaces[0].Queues = 1
			runFake(t, f, tc.args...)
			if len(f.upCalls) != 1 {
				t.Errorf("Up was called %d times, want 1", len(f.upCalls))
			}
		})
	}
}

func TestUpTakesVMDownWhenOutputFails(t *testing.T) {
	f := newFakeManager()
	f.result.DNS = kvmnet.DNS{Domain: "x\nnameserver 192.0.2.66"}
	code, stdout, stderr := runFake(t, f, "up", "d1", "--format", "kernel-args")
	if code != 1 {
		t.Errorf("exit status %d, want 1; stderr %q", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	if !slices.Equal(f.downCalls, []string{"d1"}) {
		t.Errorf("Down calls %q, want [d1]", f.downCalls)
	}
	if !strings.Contains(stderr, "invalid domain") {
		t.Errorf("stderr %q, want the render error", stderr)
	}
	if !strings.Contains(stderr, "vm d1 was taken down again") {
		t.Errorf("stderr %q, want it to say that the VM was taken down", stderr)
	}
}

func TestUpReportsFailedTakeDown(t *testing.T) {
	f := newFakeManager()
	f.result.DNS = kvmnet.DNS{Domain: "x\nnameserver 192.0.2.66"}
	f.downErr = errors.New("remove link kvmaaaaaaaaaaaa: operation not permitted")
	code, _, stderr := runFake(t, f, "up", "d2", "--format", "networkd")
	if code != 1 {
		t.Errorf("exit status %d, want 1; stderr %q", code, stderr)
	}
	for _, want := range []string{"invalid domain", "vm d2 is up", "run kvmnet down d2", "operation not permitted"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q, want it to contain %q", stderr, want)
		}
	}
}

func TestUpPassesParsedRequest(t *testing.T) {
	f := newFakeManager()
	code, _, stderr := runFake(t, f, "up", "r1", "--net", "default", "--port", "default:8080:80", "--queues", "3",
		"--tap-owner", "1000", "--tap-group", "0", "--no-vnet-hdr", "--dns", "192.0.2.53")
	if code != 0 {
		t.Fatalf("up: exit status %d, stderr %q", code, stderr)
	}
	want := kvmnet.UpRequest{
		VM: "r1", Nets: []string{"default"}, Ports: []string{"default:8080:80"}, Queues: 3,
		TapOwner: 1000, NoVnetHdr: true, DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")},
	}
	if len(f.upCalls) != 1 {
		t.Fatalf("Up was called %d times, want 1", len(f.upCalls))
	}
	if diff := cmp.Diff(want, f.upCalls[0], cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("UpRequest (-want +got):\n%s", diff)
	}
}
