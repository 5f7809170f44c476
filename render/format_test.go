package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kvmnet/kvmnet"
)

func TestQEMUArgsMacvtapFiles(t *testing.T) {
	r := testCases()[2].result // three-nics: macvtap with 4 queues last
	args, files, err := QEMUArgs(&r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []PassedFile{{3, "/dev/tap42"}, {4, "/dev/tap42"}, {5, "/dev/tap42"}, {6, "/dev/tap42"}}
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if got, want := args[len(args)-3], "tap,id=net2,fds=3:4:5:6"; got != want {
		t.Errorf("macvtap netdev = %q, want %q", got, want)
	}
}

func TestQEMUArgsFDsFollowInterfaceOrder(t *testing.T) {
	r := testCases()[2].result
	second := r.Interfaces[2]
	second.DevicePath = "/dev/tap43"
	second.MAC = "02:6b:76:1a:2b:04"
	second.Queues = 1
	r.Interfaces = append(r.Interfaces, second)

	args, files, err := QEMUArgs(&r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := files[len(files)-1], (PassedFile{FD: 7, Path: "/dev/tap43"}); got != want {
		t.Errorf("last file = %+v, want %+v", got, want)
	}
	if got, want := args[len(args)-3], "tap,id=net3,fd=7"; got != want {
		t.Errorf("second macvtap netdev = %q, want %q", got, want)
	}
}

func TestQEMUVhostOnlyWhenRequested(t *testing.T) {
	r := testCases()[2].result
	var without, with bytes.Buffer
	if err := WriteQEMU(&without, &r, Options{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(without.String(), "vhost") {
		t.Errorf("output without VhostNet mentions vhost:\n%s", without.String())
	}
	if err := WriteQEMU(&with, &r, Options{VhostNet: true}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(with.String(), ",vhost=on"); n != 3 {
		t.Errorf("output with VhostNet has %d vhost=on, want 3:\n%s", n, with.String())
	}
}

func TestQEMUOutputSplitsIntoArgs(t *testing.T) {
	r := testCases()[2].result
	args, _, err := QEMUArgs(&r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteQEMU(&buf, &r, Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(args, strings.Fields(buf.String())); diff != "" {
		t.Errorf("fields of the output differ from QEMUArgs (-args +fields):\n%s", diff)
	}
}

func TestQEMUDeviceModel(t *testing.T) {
	r := testCases()[2].result
	args, _, err := QEMUArgs(&r, Options{QemuDevice: "virtio-net-device"})
	if err != nil {
		t.Fatal(err)
	}
	last := args[len(args)-1]
	if !strings.HasPrefix(last, "virtio-net-device,") || !strings.Contains(last, ",mq=on") {
		t.Errorf("device = %q, want virtio-net-device with mq=on", last)
	}
	if strings.Contains(last, "vectors=") {
		t.Errorf("device %q has vectors=, which only PCI models accept", last)
	}
	if _, _, err := QEMUArgs(&r, Options{QemuDevice: "e1000,romfile="}); err == nil {
		t.Error("QEMUArgs accepted a device model with a comma")
	}
}

func TestCloudHypervisorMacvtapFiles(t *testing.T) {
	r := testCases()[2].result
	args, files, err := CloudHypervisorArgs(&r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 || files[0] != (PassedFile{FD: 3, Path: "/dev/tap42"}) {
		t.Errorf("files = %+v, want 4 descriptors of /dev/tap42 from 3", files)
	}
	if got, want := args[len(args)-1], "fd=[3,4,5,6],mac=02:6b:76:1a:2b:03,mtu=1500,num_queues=8"; got != want {
		t.Errorf("macvtap --net = %q, want %q", got, want)
	}
}

func TestLKVMMultiqueueTapUnsupported(t *testing.T) {
	r := testCases()[0].result
	r.Interfaces[0].Queues = 2
	_, err := LKVMArgs(&r, Options{})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("LKVMArgs error = %v, want errors.ErrUnsupported", err)
	}
}

func TestFirecrackerFieldNames(t *testing.T) {
	r := testCases()[0].result
	var buf bytes.Buffer
	if err := WriteFirecracker(&buf, &r, testCases()[0].opts); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		NetworkInterfaces []map[string]string `json:"network-interfaces"`
		BootArgs          string              `json:"boot_args"`
	}
	if err := json.Unmarshal(buf.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{{"iface_id": "eth0", "host_dev_name": "kvm3f2a1c09", "guest_mac": "02:6b:76:3f:2a:01"}}
	if diff := cmp.Diff(want, decoded.NetworkInterfaces); diff != "" {
		t.Errorf("network-interfaces (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(decoded.BootArgs, "ip=172.16.28.2::") {
		t.Errorf("boot_args = %q, want the ip= parameter", decoded.BootArgs)
	}
}

func TestFirecrackerMultiqueueTapUnsupported(t *testing.T) {
	r := testCases()[0].result
	r.Interfaces[0].Queues = 4
	_, err := Firecracker(&r, Options{})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Firecracker error = %v, want errors.ErrUnsupported", err)
	}
}

func TestKernelArgs(t *testing.T) {
	v6Only := kvmnet.Interface{
		HostDevice: "kvm00000001", GuestDevice: "eth0", MAC: "02:00:00:00:00:01", MTU: 1500,
		Addresses: prefixes("fd00::2/64"),
		Routes:    []kvmnet.Route{route("::/0", "fd00::1")},
	}
	v4 := kvmnet.Interface{
		HostDevice: "kvm00000002", GuestDevice: "eth1", MAC: "02:00:00:00:00:02", MTU: 1400,
		Addresses: prefixes("10.0.0.2/8", "10.0.0.3/8"),
		Routes:    []kvmnet.Route{route("0.0.0.0/0", "10.0.0.1"), route("192.0.2.0/24", "10.0.0.9")},
	}
	tests := []struct {
		name   string
		result kvmnet.Result
		opts   Options
		want   string
	}{
		{
			name:   "ip= on first IPv4 interface",
			result: kvmnet.Result{Interfaces: []kvmnet.Interface{v6Only, v4}},
			opts:   Options{Hostname: "h1"},
			want:   "kvmnet.ip6=eth0:fd00::2/64:fd00::1 ip=10.0.0.2::10.0.0.1:255.0.0.0:h1:eth1:off kvmnet.route=eth1:192.0.2.0/24:10.0.0.9 kvmnet.mtu=eth1:1400",
		},
		{
			name: "IPv4 DNS only, two at most",
			result: kvmnet.Result{
				Interfaces: []kvmnet.Interface{v4},
				DNS:        kvmnet.DNS{Nameservers: addrs("fd00::53", "192.0.2.1", "192.0.2.2", "192.0.2.3")},
			},
			want: "ip=10.0.0.2::10.0.0.1:255.0.0.0::eth1:off:192.0.2.1:192.0.2.2 kvmnet.route=eth1:192.0.2.0/24:10.0.0.9 kvmnet.mtu=eth1:1400",
		},
		{
			name:   "no interfaces",
			result: kvmnet.Result{DNS: kvmnet.DNS{Nameservers: addrs("192.0.2.1")}},
			want:   "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KernelArgs(&tt.result, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("KernelArgs =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestKernelArgsRoutes(t *testing.T) {
	tests := []struct {
		name   string
		addrs  []netip.Prefix
		routes []kvmnet.Route
		want   string
	}{
		{
			name:   "subnet via router",
			addrs:  prefixes("10.77.3.1/24"),
			routes: []kvmnet.Route{route("10.77.30.0/24", "10.77.3.254")},
			want:   "ip=10.77.3.1:::255.255.255.0::eth0:off kvmnet.route=eth0:10.77.30.0/24:10.77.3.254",
		},
		{
			name:   "on-link route",
			addrs:  prefixes("10.9.0.2/24"),
			routes: []kvmnet.Route{route("10.99.0.0/16", "")},
			want:   "ip=10.9.0.2:::255.255.255.0::eth0:off kvmnet.route=eth0:10.99.0.0/16",
		},
		{
			name:   "destination with host bits",
			addrs:  prefixes("10.9.0.2/24"),
			routes: []kvmnet.Route{route("10.244.1.7/16", "10.9.0.1")},
			want:   "ip=10.9.0.2:::255.255.255.0::eth0:off kvmnet.route=eth0:10.244.0.0/16:10.9.0.1",
		},
		{
			name:   "IPv6 route via gateway",
			addrs:  prefixes("fd00::2/64"),
			routes: []kvmnet.Route{route("::/0", "fd00::1"), route("fd99::/48", "fd00::fe")},
			want:   "kvmnet.ip6=eth0:fd00::2/64:fd00::1 kvmnet.route=eth0:fd99::/48:fd00::fe",
		},
		{
			name:   "on-link default route",
			addrs:  prefixes("10.9.0.2/24"),
			routes: []kvmnet.Route{route("0.0.0.0/0", "")},
			want:   "ip=10.9.0.2:::255.255.255.0::eth0:off kvmnet.route=eth0:0.0.0.0/0",
		},
		{
			name:   "default route without address of its family",
			addrs:  prefixes("10.9.0.2/24"),
			routes: []kvmnet.Route{route("0.0.0.0/0", "10.9.0.1"), route("::/0", "fd00::1")},
			want:   "ip=10.9.0.2::10.9.0.1:255.255.255.0::eth0:off kvmnet.route=eth0:::/0:fd00::1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kvmnet.Result{Interfaces: []kvmnet.Interface{{
				HostDevice: "kvm00000001", GuestDevice: "eth0", MAC: "02:00:00:00:00:01", MTU: 1500,
				Addresses: tt.addrs, Routes: tt.routes,
			}}}
			got, err := KernelArgs(&r, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("KernelArgs =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestQEMUVnetHdrOff(t *testing.T) {
	tests := []struct {
		name       string
		vnetHdr    bool
		devicePath string
		want       string
	}{
		{"tap without vnet header", false, "", "tap,id=net0,ifname=kvm00000001,script=no,downscript=no,vnet_hdr=off"},
		{"tap with vnet header", true, "", "tap,id=net0,ifname=kvm00000001,script=no,downscript=no"},
		{"macvtap", false, "/dev/tap9", "tap,id=net0,fd=3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kvmnet.Result{Interfaces: []kvmnet.Interface{{
				HostDevice: "kvm00000001", DevicePath: tt.devicePath, GuestDevice: "eth0",
				MAC: "02:00:00:00:00:01", MTU: 1500, Queues: 1, VnetHdr: tt.vnetHdr,
			}}}
			args, _, err := QEMUArgs(&r, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if args[1] != tt.want {
				t.Errorf("-netdev %q, want %q", args[1], tt.want)
			}
		})
	}
}

func TestWriteResolvConfNoDNS(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteResolvConf(&buf, &kvmnet.Result{VM: "vm-1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "# no DNS settings\n"; got != want {
		t.Errorf("WriteResolvConf without DNS = %q, want %q", got, want)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "zero value"},
		{name: "host name", opts: Options{Hostname: "web-1.example"}},
		{name: "host name with space", opts: Options{Hostname: "bad host!"}, wantErr: `invalid host name "bad host!"`},
		{name: "host name with underscore", opts: Options{Hostname: "a_b"}, wantErr: `invalid host name "a_b"`},
		{name: "long host name", opts: Options{Hostname: strings.Repeat("h", 65)}, wantErr: "longer than 64 bytes"},
		{name: "device model with comma", opts: Options{QemuDevice: "e1000,romfile="}, wantErr: "invalid QEMU device model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNetmask4(t *testing.T) {
	for bits, want := range map[int]string{0: "0.0.0.0", 1: "128.0.0.0", 20: "255.255.240.0", 31: "255.255.255.254", 32: "255.255.255.255"} {
		if got := netmask4(bits); got != want {
			t.Errorf("netmask4(%d) = %s, want %s", bits, got, want)
		}
	}
}

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name string
		dns  kvmnet.DNS
		want string
	}{
		{name: "empty", want: ""},
		{
			name: "domain alone",
			dns:  kvmnet.DNS{Domain: "example.internal"},
			want: "domain example.internal\n",
		},
		{
			name: "domain leads search",
			dns:  kvmnet.DNS{Domain: "a.example", Search: []string{"b.example", "a.example"}},
			want: "search a.example b.example\n",
		},
		{
			name: "zoned IPv6 nameserver",
			dns:  kvmnet.DNS{Nameservers: addrs("fe80::1%eth0")},
			want: "nameserver fe80::1%eth0\n",
		},
		{
			name: "unsafe entries left out",
			dns: kvmnet.DNS{
				Nameservers: []netip.Addr{{}, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fe80::1").WithZone("x\nnameserver 6.6.6.6")},
				Search:      []string{"ok.example", "bad\nnameserver 6.6.6.6", "two words"},
				Options:     []string{"ndots:1", "rotate\noptions debug"},
			},
			want: "nameserver 192.0.2.1\nsearch ok.example\noptions ndots:1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ResolvConf(tt.dns); got != tt.want {
				t.Errorf("ResolvConf =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestWriteResolvConfRejectsInjection(t *testing.T) {
	r := kvmnet.Result{DNS: kvmnet.DNS{Search: []string{"example.internal\nnameserver 192.0.2.66"}}}
	var buf bytes.Buffer
	err := WriteResolvConf(&buf, &r)
	if err == nil || !strings.Contains(err.Error(), "invalid domain") {
		t.Errorf("WriteResolvConf error = %v, want an invalid domain error", err)
	}
	if buf.Len() != 0 {
		t.Errorf("WriteResolvConf wrote %q", buf.String())
	}
}

func TestCloudInitQuotesYAMLKeywords(t *testing.T) {
	r := testCases()[0].result
	r.Interfaces[0].GuestDevice = "no"
	r.DNS.Search = []string{"null", "0x1f"}
	out, err := CloudInit(&r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`    "no":`, `set-name: "no"`, `- "null"`, `- "0x1f"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

func TestCloudInitNoInterfaces(t *testing.T) {
	out, err := CloudInit(&kvmnet.Result{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "network:\n  version: 2\n  ethernets: {}\n"; out != want {
		t.Errorf("CloudInit =\n%s\nwant\n%s", out, want)
	}
}

func TestNetworkdFilesKeys(t *testing.T) {
	r := testCases()[2].result
	files, err := NetworkdFiles(&r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"10-kvmnet-eth0.network", "10-kvmnet-eth1.network", "10-kvmnet-eth2.network"} {
		if _, ok := files[name]; !ok {
			t.Errorf("no file %s in %v", name, files)
		}
	}
	if len(files) != 3 {
		t.Errorf("got %d files, want 3", len(files))
	}
	if !strings.Contains(files["10-kvmnet-eth0.network"], "DNS=10.1.0.1") {
		t.Errorf("DNS is not on the default-route interface eth0:\n%s", files["10-kvmnet-eth0.network"])
	}
	if strings.Contains(files["10-kvmnet-eth1.network"], "DNS=") {
		t.Errorf("DNS repeated on eth1:\n%s", files["10-kvmnet-eth1.network"])
	}
}

func TestDNSInterfacePrefersIPv4DefaultRoute(t *testing.T) {
	r := kvmnet.Result{Interfaces: []kvmnet.Interface{
		{Routes: []kvmnet.Route{route("::/0", "fd00::1")}},
		{Routes: []kvmnet.Route{route("0.0.0.0/0", "10.0.0.1")}},
	}}
	if got := dnsInterface(&r); got != 1 {
		t.Errorf("dnsInterface = %d, want 1", got)
	}
	r.Interfaces[1].Routes = nil
	if got := dnsInterface(&r); got != 0 {
		t.Errorf("dnsInterface without IPv4 default route = %d, want 0", got)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, tc := range testCases() {
		var buf bytes.Buffer
		if err := WriteJSON(&buf, &tc.result); err != nil {
			t.Fatal(err)
		}
		var got kvmnet.Result
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		addrEqual := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
		prefixEqual := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
		if diff := cmp.Diff(tc.result, got, addrEqual, prefixEqual, cmpEmptyAsNil()); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", tc.name, diff)
		}
	}
}

// cmpEmptyAsNil treats nil and empty slices as equal, because WriteJSON
// writes nil lists as [].
func cmpEmptyAsNil() cmp.Option {
	return cmp.FilterValues(func(a, b any) bool {
		return isEmptySlice(a) && isEmptySlice(b)
	}, cmp.Comparer(func(a, b any) bool { return true }))
}

func isEmptySlice(v any) bool {
	switch s := v.(type) {
	case []netip.Prefix:
		return len(s) == 0
	case []netip.Addr:
		return len(s) == 0
	case []kvmnet.Route:
		return len(s) == 0
	}
	return false
}
