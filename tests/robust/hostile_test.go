package robust_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/internal/vmid"
)

// hostileCase is one bad input: set-up, the command, and what the error
// must show.
type hostileCase struct {
	name string
	// setup prepares the environment before the baseline is taken.
	setup func(e *env)
	// args are the kvmnet arguments.
	args []string
	// code is the expected exit status: 2 for invalid usage such as an
	// unknown flag, which must exit 2. A bad value may exit 1 (failed
	// operation) or 2 (invalid usage); rows for those give 1.
	code int
	// fragment must appear in the error output, naming the bad value.
	fragment string
}

// ptpNet returns a ptp network config with extra fields spliced in.
func ptpNet(name, extra string) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ptp"%s,
 "ipam":{"type":"host-local","subnet":"198.51.100.0/24","dataDir":"IPAMDIR"}}`, name, extra)
}

// fakePlugin writes an executable IPAM plugin script into a new directory
// and puts that directory first in the CNI path.
func (e *env) fakePlugin(name, script string) {
	e.t.Helper()
	dir := e.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		e.t.Fatal(err)
	}
	e.cniPath = append([]string{dir}, e.cniPath...)
}

func hostileCases() []hostileCase {
	long := strings.Repeat("a", vmid.MaxLen+1)
	return []hostileCase{
		{
			name:     "malformed JSON",
			setup:    func(e *env) { e.writeNet("bad.conf", `{"cniVersion":"1.0.0","name":"bad","type":"ptp",`) },
			args:     []string{"up", "vm-1", "--net", "bad"},
			code:     1,
			fragment: "bad.conf",
		},
		{
			name:     "mtu as string",
			setup:    func(e *env) { e.writeNet("wt.conf", ptpNet("wt", `,"mtu":"1500"`)) },
			args:     []string{"up", "vm-1", "--net", "wt"},
			code:     1,
			fragment: `"mtu"`,
		},
		{
			name:     "ipMasq as string",
			setup:    func(e *env) { e.writeNet("wt.conf", ptpNet("wt", `,"ipMasq":"true"`)) },
			args:     []string{"up", "vm-1", "--net", "wt"},
			code:     1,
			fragment: `"ipMasq"`,
		},
		{
			name:     "ipam not an object",
			setup:    func(e *env) { e.writeNet("wt.conf", `{"cniVersion":"1.0.0","name":"wt","type":"ptp","ipam":[1]}`) },
			args:     []string{"up", "vm-1", "--net", "wt"},
			code:     1,
			fragment: `"ipam"`,
		},
		{
			name:     "unknown network type",
			setup:    func(e *env) { e.writeNet("t.conf", strings.Replace(ptpNet("t", ""), `"ptp"`, `"vxlan9"`, 1)) },
			args:     []string{"up", "vm-1", "--net", "t"},
			code:     1,
			fragment: `"vxlan9"`,
		},
		{
			name: "unknown IPAM plugin",
			setup: func(e *env) {
				e.writeNet("n.conf", strings.Replace(ptpNet("n", ""), `"host-local"`, `"nosuch-ipam"`, 1))
			},
			args:     []string{"up", "vm-1", "--net", "n"},
			code:     1,
			fragment: `"nosuch-ipam" not found`,
		},
		{
			name: "IPAM type is a path",
			setup: func(e *env) {
				e.writeNet("n.conf", strings.Replace(ptpNet("n", ""), `"host-local"`, `"../../bin/sh"`, 1))
			},
			args:     []string{"up", "vm-1", "--net", "n"},
			code:     1,
			fragment: `"../../bin/sh"`,
		},
		{
			name: "plugin exits non-zero",
			setup: func(e *env) {
				// DEL succeeds: CNI expects a plugin to release what it does
				// not hold without an error.
				e.fakePlugin("fail-ipam", `[ "$CNI_COMMAND" = DEL ] && exit 0
echo '{"cniVersion":"1.0.0","code":11,"msg":"pool offline"}'
exit 1
`)
				e.writeNet("n.conf", strings.Replace(ptpNet("n", ""), `"host-local"`, `"fail-ipam"`, 1))
			},
			args:     []string{"up", "vm-1", "--net", "n"},
			code:     1,
			fragment: "fail-ipam",
		},
		{
			name: "plugin prints garbage",
			setup: func(e *env) {
				e.fakePlugin("garbage-ipam", "echo 'this is not json'\n")
				e.writeNet("n.conf", strings.Replace(ptpNet("n", ""), `"host-local"`, `"garbage-ipam"`, 1))
			},
			args:     []string{"up", "vm-1", "--net", "n"},
			code:     1,
			fragment: "garbage-ipam",
		},
		{
			name: "plugin result without addresses",
			setup: func(e *env) {
				e.fakePlugin("empty-ipam", `echo '{"cniVersion":"1.0.0","ips":[]}'`+"\n")
				e.writeNet("n.conf", strings.Replace(ptpNet("n", ""), `"host-local"`, `"empty-ipam"`, 1))
			},
			args:     []string{"up", "vm-1", "--net", "n"},
			code:     1,
			fragment: "no addresses",
		},
		{
			name: "IPAM range exhausted",
			setup: func(e *env) {
				e.writeNet("tiny.conf", `{"cniVersion":"1.0.0","name":"tiny","type":"ptp",
 "ipam":{"type":"host-local","subnet":"198.51.100.0/30","dataDir":"IPAMDIR"}}`)
				e.mustRun("up", "holder", "--net", "tiny")
			},
			args:     []string{"up", "vm-1", "--net", "tiny"},
			code:     1,
			fragment: "no IP addresses available",
		},
		{
			name: "bridge name taken by a veth",
			setup: func(e *env) {
				e.ns.Run(e.t, "ip", "link", "add", "kvmtveth0", "type", "veth", "peer", "name", "kvmtveth1")
				e.writeNet("b.conf", `{"cniVersion":"1.0.0","name":"b","type":"bridge","bridge":"kvmtveth0","isGateway":true,
 "ipam":{"type":"host-local","subnet":"198.51.100.0/24","dataDir":"IPAMDIR"}}`)
			},
			args:     []string{"up", "vm-1", "--net", "b"},
			code:     1,
			fragment: "kvmtveth0",
		},
		{
			name: "tap name taken",
			setup: func(e *env) {
				e.ns.Run(e.t, "ip", "link", "add", vmid.LinkName("vm-1", 0), "type", "veth", "peer", "name", "kvmtpeer0")
			},
			args:     []string{"up", "vm-1"},
			code:     1,
			fragment: vmid.LinkName("vm-1", 0),
		},
		{
			name: "tap name taken by a foreign tap",
			setup: func(e *env) {
				e.ns.Run(e.t, "ip", "tuntap", "add", vmid.LinkName("vm-1", 0), "mode", "tap")
				e.ns.Run(e.t, "ip", "link", "set", vmid.LinkName("vm-1", 0), "alias", "kvmnet vm=other")
			},
			args:     []string{"up", "vm-1"},
			code:     1,
			fragment: vmid.LinkName("vm-1", 0),
		},
		{name: "id with path separators", args: []string{"up", "../../etc/x"}, code: 1, fragment: `"../../etc/x"`},
		{name: "id with a slash", args: []string{"up", "a/b"}, code: 1, fragment: `"a/b"`},
		{name: "id with a control character", args: []string{"up", "vm\x01x"}, code: 1, fragment: `"vm\x01x"`},
		{name: "id with a newline", args: []string{"up", "vm\nx"}, code: 1, fragment: `"vm\nx"`},
		{name: "id with shell syntax", args: []string{"up", "vm;touch${IFS}x"}, code: 1, fragment: `"vm;touch${IFS}x"`},
		{name: "empty id", args: []string{"up", ""}, code: 1, fragment: "invalid VM id: empty"},
		{name: "id too long", args: []string{"up", long}, code: 1, fragment: fmt.Sprintf("%d bytes", len(long))},
		{name: "down with a bad id", args: []string{"down", "../x"}, code: 1, fragment: `"../x"`},
		{name: "show with a bad id", args: []string{"show", "../x"}, code: 1, fragment: `"../x"`},
		{
			name: "config over 1 MiB",
			setup: func(e *env) {
				pad := strings.Repeat(" ", 1<<20)
				e.writeNet("big.conf", ptpNet("big", `,"pad":"`+pad+`"`))
			},
			args:     []string{"up", "vm-1", "--net", "big"},
			code:     1,
			fragment: "big.conf is larger than",
		},
		{name: "net list of 100 KiB", args: []string{"up", "vm-1", "--net", strings.Repeat("n,", 50<<10)}, code: 1, fragment: "--net list: longer than"},
		{
			name:     "mtu too small",
			setup:    func(e *env) { e.writeNet("m.conf", ptpNet("m", `,"mtu":10`)) },
			args:     []string{"up", "vm-1", "--net", "m"},
			code:     1,
			fragment: "mtu 10 is out of range",
		},
		{
			name:     "mtu too large",
			setup:    func(e *env) { e.writeNet("m.conf", ptpNet("m", `,"mtu":70000`)) },
			args:     []string{"up", "vm-1", "--net", "m"},
			code:     1,
			fragment: "mtu 70000 is out of range",
		},
		{
			name: "macvlan mtu above the master's",
			setup: func(e *env) {
				e.ns.Run(e.t, "ip", "link", "add", "kvmtm0", "type", "veth", "peer", "name", "kvmtm1")
				e.writeNet("mv.conf", `{"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"kvmtm0","mtu":9000,
 "ipam":{"type":"host-local","subnet":"198.51.100.0/24","dataDir":"IPAMDIR"}}`)
			},
			args:     []string{"up", "vm-1", "--net", "mv"},
			code:     1,
			fragment: "mtu 9000 is larger than the mtu 1500",
		},
		{
			name: "macvlan master missing",
			setup: func(e *env) {
				e.writeNet("mv.conf", `{"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"kvmtnone",
 "ipam":{"type":"host-local","subnet":"198.51.100.0/24","dataDir":"IPAMDIR"}}`)
			},
			args:     []string{"up", "vm-1", "--net", "mv"},
			code:     1,
			fragment: "kvmtnone",
		},
		{
			name: "bridge name too long",
			setup: func(e *env) {
				e.writeNet("b.conf", `{"cniVersion":"1.0.0","name":"b","type":"bridge","bridge":"kvmtbridge012345",
 "ipam":{"type":"host-local","subnet":"198.51.100.0/24","dataDir":"IPAMDIR"}}`)
			},
			args:     []string{"up", "vm-1", "--net", "b"},
			code:     1,
			fragment: `"kvmtbridge012345"`,
		},
		{
			name:     "network name with a space",
			setup:    func(e *env) { e.writeNet("n.conf", ptpNet("bad name", "")) },
			args:     []string{"up", "vm-1", "--net", "n"},
			code:     1,
			fragment: `"bad name"`,
		},
		{
			name: "chained plugin other than portmap",
			setup: func(e *env) {
				e.writeNet("c.conflist", `{"cniVersion":"1.0.0","name":"c","plugins":[
 {"type":"ptp","ipam":{"type":"host-local","subnet":"198.51.100.0/24","dataDir":"IPAMDIR"}},{"type":"tuning"}]}`)
			},
			args:     []string{"up", "vm-1", "--net", "c"},
			code:     1,
			fragment: `"tuning"`,
		},
		{name: "network given twice", args: []string{"up", "vm-1", "--net", "default,default"}, code: 1, fragment: `"default" given twice`},
		{
			name: "network defined in two files",
			setup: func(e *env) {
				e.writeNet("a.conf", ptpNet("twice", ""))
				e.writeNet("b.conf", ptpNet("twice", ""))
			},
			args:     []string{"up", "vm-1", "--net", "twice"},
			code:     1,
			fragment: `"twice" is defined twice`,
		},
		{name: "unknown network", args: []string{"up", "vm-1", "--net", "nosuchnet"}, code: 1, fragment: `"nosuchnet"`},
		{name: "net arg with shell syntax", args: []string{"up", "vm-1", "--net", "default:IP=$(touch${IFS}x)"}, code: 1, fragment: "$(touch${IFS}x)"},
		{
			name: "two networks with default routes",
			setup: func(e *env) {
				e.writeNet("r.conf", strings.Replace(ptpNet("r", ""), `"dataDir"`, `"routes":[{"dst":"0.0.0.0/0"}],"dataDir"`, 1))
			},
			args:     []string{"up", "vm-1", "--net", "r,default"},
			code:     1,
			fragment: `network "r" ipam route 0.0.0.0/0 and network "default" ipam route 0.0.0.0/0`,
		},
		{
			name: "two networks with default routes reversed",
			setup: func(e *env) {
				e.writeNet("r.conf", strings.Replace(ptpNet("r", ""), `"dataDir"`, `"routes":[{"dst":"0.0.0.0/0"}],"dataDir"`, 1))
			},
			args:     []string{"up", "vm-1", "--net", "default,r"},
			code:     1,
			fragment: `network "default" ipam route 0.0.0.0/0 and network "r" ipam route 0.0.0.0/0`,
		},
		{
			name: "isDefaultGateway and an ipam default route",
			setup: func(e *env) {
				e.writeNet("b.conf", `{"cniVersion":"1.0.0","name":"b","type":"bridge","bridge":"kvmtbr9","isDefaultGateway":true,
 "ipam":{"type":"host-local","subnet":"198.51.100.0/24","routes":[{"dst":"0.0.0.0/0","gw":"198.51.100.254"}],"dataDir":"IPAMDIR"}}`)
			},
			args:     []string{"up", "vm-1", "--net", "b"},
			code:     1,
			fragment: "isDefaultGateway",
		},
		{name: "queue count too large", args: []string{"up", "vm-1", "--queues", "1000"}, code: 1, fragment: "1000"},
		{name: "dns not an address", args: []string{"up", "vm-1", "--dns", "ns.example"}, code: 2, fragment: `"ns.example"`},
		{name: "negative tap owner", args: []string{"up", "vm-1", "--tap-owner", "-5"}, code: 2, fragment: "-5"},
		{name: "unknown flag", args: []string{"up", "vm-1", "--bogus"}, code: 2, fragment: "bogus"},
		{name: "unknown command", args: []string{"explode"}, code: 2, fragment: `"explode"`},
		{
			name:     "down of a truncated record",
			setup:    func(e *env) { e.writeRecord("vm-t", `{"version":1,"vm":"vm-t","phase":"up","attachm`) },
			args:     []string{"down", "vm-t"},
			code:     1,
			fragment: "vm-t.json is corrupt",
		},
		{
			name:     "show of a truncated record",
			setup:    func(e *env) { e.writeRecord("vm-t", `{"version":1,"vm":"vm-t","phase":"up","attachm`) },
			args:     []string{"show", "vm-t"},
			code:     1,
			fragment: "vm-t.json is corrupt",
		},
		{
			name:     "up over a truncated record",
			setup:    func(e *env) { e.writeRecord("vm-t", `{"version":1,"vm":"vm-t","phase":"up","attachm`) },
			args:     []string{"up", "vm-t"},
			code:     1,
			fragment: "vm-t.json is corrupt",
		},
		{
			name:     "down of a record from a future version",
			setup:    func(e *env) { e.writeRecord("vm-f", `{"version":99,"vm":"vm-f","phase":"up","attachments":[]}`) },
			args:     []string{"down", "vm-f"},
			code:     1,
			fragment: "format version 99",
		},
		{
			name:     "show of a record from a future version",
			setup:    func(e *env) { e.writeRecord("vm-f", `{"version":99,"vm":"vm-f","phase":"up","attachments":[]}`) },
			args:     []string{"show", "vm-f"},
			code:     1,
			fragment: "format version 99",
		},
		{name: "gc with an unknown flag", args: []string{"gc", "--bogus"}, code: 2, fragment: "bogus"},
		{name: "gc with an argument", args: []string{"gc", "vm-1"}, code: 2, fragment: `"vm-1"`},
		{
			name: "record naming a foreign device",
			setup: func(e *env) {
				e.ns.Run(e.t, "ip", "link", "add", "kvmtveth0", "type", "veth", "peer", "name", "kvmtveth1")
				e.writeRecord("vm-d", `{"version":1,"vm":"vm-d","phase":"up","attachments":[{"index":0,"hostDevice":"kvmtveth0"}]}`)
			},
			args:     []string{"down", "vm-d"},
			code:     1,
			fragment: `"kvmtveth0"`,
		},
		{
			name:     "record of another vm",
			setup:    func(e *env) { e.writeRecord("vm-o", `{"version":1,"vm":"vm-p","phase":"up","attachments":[]}`) },
			args:     []string{"down", "vm-o"},
			code:     1,
			fragment: `belongs to vm "vm-p"`,
		},
	}
}

// writeRecord writes a state record by hand, creating the state dir.
func (e *env) writeRecord(id, text string) {
	e.t.Helper()
	if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.stateDir, id+".json"), []byte(text), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// TestHostileInput feeds bad input to kvmnet: each must fail with an error
// naming the bad value and create nothing.
func TestHostileInput(t *testing.T) {
	cases := hostileCases()
	t.Logf("%d bad inputs", len(cases))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "bad")
			if c.setup != nil {
				c.setup(e)
			}
			base := e.snapshot()
			r := e.run(c.args...)
			switch {
			case c.code == 2 && r.code != 2:
				t.Errorf("exit status = %d, want 2: %s", r.code, r)
			case r.code != 1 && r.code != 2:
				t.Errorf("exit status = %d, want 1 or 2: %s", r.code, r)
			}
			if !strings.Contains(r.stderr, c.fragment) {
				t.Errorf("error does not contain %q: %s", c.fragment, r.stderr)
			}
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("kvmnet panicked: %s", r.stderr)
			}
			e.requireBaseline(base, "after the bad input")
		})
	}
}
