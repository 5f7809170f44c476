package render

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kvmnet/kvmnet"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func goldenPath(caseName, format string) string {
	return filepath.Join("testdata", caseName, format+".golden")
}

func TestGolden(t *testing.T) {
	for _, tc := range testCases() {
		for _, format := range Formats() {
			if slices.Contains(tc.unsupported, format) {
				continue
			}
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := Render(&buf, format, &tc.result, tc.opts); err != nil {
					t.Fatalf("Render: %v", err)
				}
				path := goldenPath(tc.name, format)
				if *update {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("read golden file (run go test -update to create it): %v", err)
				}
				if diff := cmp.Diff(string(want), buf.String()); diff != "" {
					t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
				}
			})
		}
	}
}

// TestEveryFormatRendersEveryCase renders every case in every format. The
// only failures allowed are the listed hypervisor limits, and they must
// wrap errors.ErrUnsupported and write nothing.
func TestEveryFormatRendersEveryCase(t *testing.T) {
	for _, tc := range testCases() {
		for _, format := range Formats() {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				var buf bytes.Buffer
				err := Render(&buf, format, &tc.result, tc.opts)
				if !slices.Contains(tc.unsupported, format) {
					if err != nil {
						t.Fatalf("Render: %v", err)
					}
					return
				}
				if !errors.Is(err, errors.ErrUnsupported) {
					t.Fatalf("Render error = %v, want one wrapping errors.ErrUnsupported", err)
				}
				if buf.Len() != 0 {
					t.Errorf("Render wrote %q before failing", buf.String())
				}
				if _, err := os.Stat(goldenPath(tc.name, format)); err == nil {
					t.Errorf("stale golden file %s for an unsupported format", goldenPath(tc.name, format))
				}
			})
		}
	}
}

func TestFormatsNames(t *testing.T) {
	want := []string{"json", "qemu", "firecracker", "cloud-hypervisor", "lkvm", "kernel-args", "networkd", "cloud-init", "resolv.conf"}
	if diff := cmp.Diff(want, Formats()); diff != "" {
		t.Errorf("Formats() (-want +got):\n%s", diff)
	}
}

func TestRenderUnknownFormat(t *testing.T) {
	r := testCases()[0].result
	var buf bytes.Buffer
	err := Render(&buf, "xml", &r, Options{})
	if !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("Render error = %v, want ErrUnknownFormat", err)
	}
	if !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("error %q does not name the format", err)
	}
	for _, name := range Formats() {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not list format %s", err, name)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("Render wrote %q", buf.String())
	}
}

func TestRenderNilResult(t *testing.T) {
	for _, format := range Formats() {
		if err := Render(&bytes.Buffer{}, format, nil, Options{}); err == nil {
			t.Errorf("Render(%s, nil) returned no error", format)
		}
	}
}

func TestRenderNamesFormatAndVM(t *testing.T) {
	r := testCases()[0].result
	r.Interfaces[0].MAC = "not-a-mac"
	err := Render(&bytes.Buffer{}, "qemu", &r, Options{})
	if err == nil {
		t.Fatal("Render returned no error for an invalid MAC")
	}
	for _, part := range []string{"render qemu", `vm "web-1"`, "interface 0", `"not-a-mac"`} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not contain %q", err, part)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRenderWriteError(t *testing.T) {
	r := testCases()[0].result
	for _, format := range Formats() {
		err := Render(failingWriter{}, format, &r, testCases()[0].opts)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: error = %v, want one carrying the write error", format, err)
		}
	}
}

// TestInvalidInterfaceFields checks that every format that reads a field
// rejects a bad value of it instead of writing it out.
func TestInvalidInterfaceFields(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*kvmnet.Interface)
		formats []string
		wantErr string
	}{
		{
			name:    "multicast MAC",
			change:  func(ifc *kvmnet.Interface) { ifc.MAC = "03:00:00:00:00:01" },
			formats: []string{"qemu", "firecracker", "cloud-hypervisor", "lkvm", "kernel-args", "networkd", "cloud-init"},
			wantErr: "multicast",
		},
		{
			name:    "EUI-64 MAC",
			change:  func(ifc *kvmnet.Interface) { ifc.MAC = "02:00:00:00:00:00:00:01" },
			formats: []string{"qemu", "firecracker", "cloud-hypervisor", "lkvm", "networkd", "cloud-init"},
			wantErr: "want 6 bytes",
		},
		{
			name:    "host device with comma",
			change:  func(ifc *kvmnet.Interface) { ifc.HostDevice = "tap0,script=/x" },
			formats: []string{"qemu", "firecracker", "cloud-hypervisor", "lkvm"},
			wantErr: "invalid host device name",
		},
		{
			name:    "host device too long",
			change:  func(ifc *kvmnet.Interface) { ifc.HostDevice = "kvm0123456789abc" },
			formats: []string{"qemu", "firecracker", "cloud-hypervisor", "lkvm"},
			wantErr: "longer than 15 bytes",
		},
		{
			name:    "guest device with space",
			change:  func(ifc *kvmnet.Interface) { ifc.GuestDevice = "eth0 x" },
			formats: []string{"firecracker", "kernel-args", "networkd", "cloud-init"},
			wantErr: "invalid guest device name",
		},
		{
			name:    "too many queues",
			change:  func(ifc *kvmnet.Interface) { ifc.Queues = 257 },
			formats: []string{"qemu", "firecracker", "cloud-hypervisor", "lkvm"},
			wantErr: "invalid queue count 257",
		},
		{
			name:    "MTU too small",
			change:  func(ifc *kvmnet.Interface) { ifc.MTU = 67 },
			formats: []string{"qemu", "cloud-hypervisor", "kernel-args", "networkd", "cloud-init"},
			wantErr: "invalid MTU 67",
		},
		{
			name:    "relative device path",
			change:  func(ifc *kvmnet.Interface) { ifc.DevicePath = "dev/tap3" },
			formats: []string{"qemu", "cloud-hypervisor", "lkvm"},
			wantErr: "not absolute",
		},
		{
			name:    "device path with comma",
			change:  func(ifc *kvmnet.Interface) { ifc.DevicePath = "/dev/tap3,vhost=1" },
			formats: []string{"qemu", "cloud-hypervisor", "lkvm"},
			wantErr: "invalid device path",
		},
		{
			name: "route gateway of other family",
			change: func(ifc *kvmnet.Interface) {
				ifc.Routes = []kvmnet.Route{route("0.0.0.0/0", "fd00::1")}
			},
			formats: []string{"kernel-args", "networkd", "cloud-init"},
			wantErr: "differ in address family",
		},
		{
			name:    "zero address",
			change:  func(ifc *kvmnet.Interface) { ifc.Addresses = append(ifc.Addresses, netip.Prefix{}) },
			formats: []string{"kernel-args", "networkd", "cloud-init"},
			wantErr: "zero prefix",
		},
	}
	for _, tt := range tests {
		for _, format := range tt.formats {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				r := testCases()[0].result
				tt.change(&r.Interfaces[0])
				var buf bytes.Buffer
				err := Render(&buf, format, &r, Options{})
				if err == nil {
					t.Fatalf("Render returned no error; output:\n%s", buf.String())
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if buf.Len() != 0 {
					t.Errorf("Render wrote %q before failing", buf.String())
				}
			})
		}
	}
}

func TestDuplicateGuestDevices(t *testing.T) {
	r := testCases()[2].result
	r.Interfaces[1].GuestDevice = "eth0"
	for _, format := range []string{"kernel-args", "networkd", "cloud-init"} {
		err := Render(&bytes.Buffer{}, format, &r, Options{})
		if err == nil || !strings.Contains(err.Error(), `same guest device name "eth0"`) {
			t.Errorf("%s: error = %v, want one about the repeated guest device name", format, err)
		}
	}
}

func TestDuplicateMACs(t *testing.T) {
	r := testCases()[2].result
	r.Interfaces[2].MAC = strings.ToUpper(r.Interfaces[0].MAC)
	for _, format := range []string{"kernel-args", "networkd", "cloud-init"} {
		err := Render(&bytes.Buffer{}, format, &r, Options{})
		if err == nil || !strings.Contains(err.Error(), "same MAC address") {
			t.Errorf("%s: error = %v, want one about the repeated MAC address", format, err)
		}
	}
}

func TestInvalidHostname(t *testing.T) {
	r := testCases()[0].result
	for _, name := range []string{"web 1", "web:1", "a_b", strings.Repeat("h", 65)} {
		_, err := KernelArgs(&r, Options{Hostname: name})
		if err == nil {
			t.Errorf("KernelArgs accepted host name %q", name)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	tc := testCases()[2] // three-nics
	for _, format := range Formats() {
		if slices.Contains(tc.unsupported, format) {
			continue
		}
		b.Run(format, func(b *testing.B) {
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := Render(&buf, format, &tc.result, tc.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
