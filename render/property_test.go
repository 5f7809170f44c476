package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet"
)

// randomString returns a valid name most of the time, else one with
// separators, quotes, control characters, invalid UTF-8 or too many bytes.
func randomString(rng *rand.Rand) string {
	if rng.IntN(8) != 0 {
		valid := []string{"eth0", "eth1", "kvm3f2a1c09", "a", "no", "null", "0x1f", "example.internal", "x-y_z"}
		return valid[rng.IntN(len(valid))]
	}
	pieces := []string{
		"", "eth0", "kvm3f2a1c09", "a", "no", "null", "0x1f", ".", "..", "/dev/tap42",
		"dev/tap1", "x,y", "a=b", "a:b", "sp ace", "new\nline", "tab\t", "quote\"", "back\\slash",
		"\x00", "\xff\xfe", "é", "[1,2]", "#comment", "example.internal", "-", strings.Repeat("x", 300),
	}
	var b strings.Builder
	for range rng.IntN(3) + 1 {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

func randomMAC(rng *rand.Rand) string {
	switch rng.IntN(6) {
	case 0:
		return randomString(rng)
	case 1:
		return "03:00:00:00:00:01"
	case 2:
		return "00:00:00:00:00:00"
	default:
		return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256))
	}
}

func randomAddr(rng *rand.Rand) netip.Addr {
	switch rng.IntN(10) {
	case 0:
		return netip.Addr{}
	case 1, 2:
		var a [16]byte
		for i := range a {
			a[i] = byte(rng.IntN(256))
		}
		addr := netip.AddrFrom16(a)
		if rng.IntN(8) == 0 {
			addr = addr.WithZone(randomString(rng))
		}
		return addr
	default:
		return netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	}
}

func randomPrefix(rng *rand.Rand) netip.Prefix {
	addr := randomAddr(rng)
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(addr.WithZone(""), rng.IntN(addr.BitLen()+1))
}

func randomInterface(rng *rand.Rand) kvmnet.Interface {
	ifc := kvmnet.Interface{
		Network:     randomString(rng),
		Type:        []string{"ptp", "bridge", "macvlan", "flannel", ""}[rng.IntN(5)],
		HostDevice:  randomString(rng),
		GuestDevice: randomString(rng),
		MAC:         randomMAC(rng),
		MTU:         []int{0, 1500, 1500, 1450, 9000, 68, 65535, 67, -1, 70000}[rng.IntN(10)],
		Queues:      []int{0, 1, 1, 1, 2, 4, 256, 257, -3}[rng.IntN(9)],
		VnetHdr:     rng.IntN(2) == 0,
	}
	switch rng.IntN(6) {
	case 0:
		ifc.DevicePath = randomString(rng)
	case 1:
		ifc.DevicePath = fmt.Sprintf("/dev/tap%d", rng.IntN(100))
	}
	for range rng.IntN(4) {
		ifc.Addresses = append(ifc.Addresses, randomPrefix(rng))
	}
	for range rng.IntN(3) {
		ifc.Gateways = append(ifc.Gateways, randomAddr(rng))
	}
	for range rng.IntN(4) {
		ifc.Routes = append(ifc.Routes, kvmnet.Route{Dst: randomPrefix(rng), GW: randomAddr(rng)})
	}
	return ifc
}

func randomResult(rng *rand.Rand) *kvmnet.Result {
	r := &kvmnet.Result{VM: randomString(rng)}
	for range rng.IntN(4) {
		r.Interfaces = append(r.Interfaces, randomInterface(rng))
	}
	for range rng.IntN(5) {
		r.DNS.Nameservers = append(r.DNS.Nameservers, randomAddr(rng))
	}
	if rng.IntN(2) == 0 {
		r.DNS.Domain = randomString(rng)
	}
	for range rng.IntN(3) {
		r.DNS.Search = append(r.DNS.Search, randomString(rng))
	}
	for range rng.IntN(3) {
		r.DNS.Options = append(r.DNS.Options, randomString(rng))
	}
	return r
}

func randomOptions(rng *rand.Rand) Options {
	return Options{
		VhostNet:   rng.IntN(2) == 0,
		QemuDevice: []string{"", "", "virtio-net-device", "virtio-net-pci", "e1000,x=1"}[rng.IntN(5)],
		Hostname:   []string{"", "", "web-1", "web-1", "bad host", "a:b"}[rng.IntN(6)],
	}
}

// checkRenderedOutput renders r in every format and fails the test on a
// panic or on output that breaks its format's basic shape. JSON formats
// must be valid JSON and text formats printable ASCII lines. Each line of
// an argument format must split into an option and its value.
func checkRenderedOutput(t *testing.T, r *kvmnet.Result, opts Options) {
	t.Helper()
	for _, format := range Formats() {
		var buf bytes.Buffer
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					input, _ := json.Marshal(r)
					t.Fatalf("Render(%s) panicked: %v\nresult: %s\noptions: %+v", format, p, input, opts)
				}
			}()
			err = Render(&buf, format, r, opts)
		}()
		if err != nil {
			if buf.Len() != 0 {
				t.Errorf("Render(%s) failed with %v but wrote %q", format, err, buf.String())
			}
			continue
		}

		out := buf.String()
		switch format {
		case "json", "firecracker":
			if !json.Valid(buf.Bytes()) {
				t.Errorf("Render(%s) wrote invalid JSON:\n%s", format, out)
			}
			continue
		}
		for i := range len(out) {
			if c := out[i]; (c < 0x20 && c != '\n') || c >= 0x7f {
				t.Errorf("Render(%s) wrote byte %#x at %d:\n%q", format, c, i, out)
				break
			}
		}
		switch format {
		case "qemu", "cloud-hypervisor", "lkvm":
			for line := range strings.Lines(out) {
				if n := len(strings.Fields(line)); n != 2 {
					t.Errorf("Render(%s) line %q has %d fields, want 2", format, line, n)
				}
			}
		case "kernel-args":
			if strings.Count(out, "\n") > 1 {
				t.Errorf("Render(kernel-args) wrote more than one line:\n%s", out)
			}
		}
	}
}

func TestRandomResultsNeverPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		checkRenderedOutput(t, randomResult(rng), randomOptions(rng))
	}
}

// TestValidRandomResultsRender checks that results built only from valid
// values render in every format that supports their devices, twice with
// the same output.
func TestValidRandomResultsRender(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 500 {
		r := &kvmnet.Result{VM: fmt.Sprintf("vm-%d", n)}
		for i := range rng.IntN(4) {
			v4 := netip.AddrFrom4([4]byte{10, byte(i), byte(rng.IntN(256)), byte(2 + rng.IntN(200))})
			gw := netip.AddrFrom4([4]byte{10, byte(i), v4.As4()[2], 1})
			ifc := kvmnet.Interface{
				HostDevice:  fmt.Sprintf("kvm%08x", rng.Uint32()),
				GuestDevice: fmt.Sprintf("eth%d", i),
				MAC:         fmt.Sprintf("02:6b:76:%02x:%02x:%02x", n%256, rng.IntN(256), i),
				MTU:         []int{0, 1500, 1450, 9000}[rng.IntN(4)],
				Queues:      1,
				Addresses:   []netip.Prefix{netip.PrefixFrom(v4, 24)},
				Gateways:    []netip.Addr{gw},
			}
			if i == 0 {
				ifc.Routes = []kvmnet.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), GW: gw}}
			}
			r.Interfaces = append(r.Interfaces, ifc)
		}
		r.DNS.Nameservers = []netip.Addr{netip.MustParseAddr("10.0.0.53")}

		for _, format := range Formats() {
			var first, second bytes.Buffer
			if err := Render(&first, format, r, Options{}); err != nil {
				t.Fatalf("Render(%s) of a valid result: %v", format, err)
			}
			if err := Render(&second, format, r, Options{}); err != nil {
				t.Fatalf("second Render(%s): %v", format, err)
			}
			if first.String() != second.String() {
				t.Fatalf("Render(%s) is not deterministic:\n%s\n---\n%s", format, first.String(), second.String())
			}
		}
		checkRenderedOutput(t, r, Options{})
	}
}

// FuzzRender decodes a Result from JSON and renders it in every format.
func FuzzRender(f *testing.F) {
	for _, tc := range testCases() {
		data, err := json.Marshal(tc.result)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, tc.opts.VhostNet, tc.opts.QemuDevice, tc.opts.Hostname)
	}
	f.Add([]byte(`{"interfaces":[{"mac":"02:00:00:00:00:01","guestDevice":"eth0","hostDevice":"t","queues":-1}]}`), false, "", "")
	f.Add([]byte(`{"dns":{"search":["a\nnameserver 192.0.2.1"]}}`), false, "", "")

	f.Fuzz(func(t *testing.T, data []byte, vhost bool, device, hostname string) {
		var r kvmnet.Result
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		checkRenderedOutput(t, &r, Options{VhostNet: vhost, QemuDevice: device, Hostname: hostname})
	})
}
