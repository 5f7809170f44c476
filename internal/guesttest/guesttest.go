//go:build linux

// Package guesttest boots small Linux guests under QEMU for kvmnet's
// end-to-end tests and talks to them over their serial console.
//
// The guest is Debian's cloud kernel with a busybox initramfs, built by
// guest/build.sh (see FindImage). Its init configures the network from the
// kernel command line (kernel ip= syntax plus kvmnet.* entries), serves HTTP
// on port 80 and a TCP echo on port 7, prints a ready marker and then runs
// shell commands sent over the console (see Guest.Run).
//
// QEMU runs with software emulation (-accel tcg) because these tests must
// not depend on a usable /dev/kvm. At most MaxGuests guests run at once on
// the machine, across all test processes.
package guesttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Machine is a QEMU machine type that Boot supports.
type Machine string

const (
	// MachineMicrovm is QEMU's microvm with a PCIe host bridge (pcie=on), so
	// the virtio-net-pci devices that kvmnet prints work on it. It boots the
	// uncompressed vmlinux through its PVH entry.
	MachineMicrovm Machine = "microvm"
	// MachineQ35 is QEMU's q35 PC. It boots the compressed bzImage.
	MachineQ35 Machine = "q35"
)

// ReadyMarker is the line prefix the guest's init prints once the network is
// configured and the responders run.
const ReadyMarker = "KVMNET-GUEST-READY"

// failedMarker is the line prefix the guest's init prints in place of
// ReadyMarker when its set-up script failed.
const failedMarker = "KVMNET-GUEST-FAILED"

const (
	defaultMemoryMB     = 256
	minMemoryMB         = 96
	defaultReadyTimeout = 90 * time.Second
	// defaultRunTimeout is a little longer than the 120 s limit the guest
	// puts on each command, so the guest's own limit fires first.
	defaultRunTimeout = 130 * time.Second
)

// Options describes one guest.
type Options struct {
	// Name labels the guest in test logs. Optional; default "guest".
	Name string
	// Netns is the named network namespace (as listed by `ip netns`) that
	// QEMU runs in. Optional; empty runs QEMU in the test's own namespace.
	Netns string
	// NetArgs are the QEMU arguments for the guest's NICs, exactly as
	// `kvmnet up --format qemu` prints them, split into words (see SplitArgs).
	NetArgs []string
	// KernelArgs is appended to the guest's kernel command line, for example
	// the output of `kvmnet up --format kernel-args`.
	KernelArgs string
	// Files are passed to QEMU as open descriptors: Files[i] becomes
	// descriptor 3+i, for NetArgs that name fd=N (a macvtap's /dev/tapN).
	// Optional.
	Files []*os.File
	// Machine is the QEMU machine type. Optional; default MachineMicrovm.
	Machine Machine
	// MemoryMB is the guest's memory in MiB. Optional; default 256, at least 96.
	MemoryMB int
	// ReadyTimeout bounds the wait for a free guest slot plus the boot up
	// to the ready marker. Optional; default 90 s.
	ReadyTimeout time.Duration
	// Image is the kernel and initramfs to boot. Optional; the zero value
	// means FindImage.
	Image Image
}

// Guest is a running QEMU guest. Its methods are safe for concurrent use,
// but Run and MustRun call t.Fatal and so belong to the test's goroutine.
type Guest struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  *serialLog
	slot *slot

	closeOnce sync.Once

	// runMu serialises commands on the console.
	runMu sync.Mutex
	stdin io.WriteCloser
	next  int

	// BootTime is the time from starting QEMU to the ready marker.
	BootTime time.Duration
}

// SplitArgs splits QEMU arguments printed by kvmnet into words. kvmnet
// prints no quoting, so splitting on white space is exact.
func SplitArgs(s string) []string {
	return strings.Fields(s)
}

// Boot starts a guest and waits for its ready marker. It fails the test,
// with the serial log attached, when QEMU cannot start or the marker does
// not come within opts.ReadyTimeout. Close runs in t.Cleanup.
func Boot(t testing.TB, opts Options) *Guest {
	t.Helper()
	RequireGuests(t)

	// Step 1: fill in defaults and find the image.
	if opts.Name == "" {
		opts.Name = "guest"
	}
	if opts.Machine == "" {
		opts.Machine = MachineMicrovm
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = defaultMemoryMB
	}
	if opts.MemoryMB < minMemoryMB {
		t.Fatalf("boot %s: memory %d MiB is below the guest's minimum of %d MiB", opts.Name, opts.MemoryMB, minMemoryMB)
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = defaultReadyTimeout
	}
	if opts.Image == (Image{}) {
		opts.Image = FindImage(t)
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), opts.ReadyTimeout,
		fmt.Errorf("no %s within %s", ReadyMarker, opts.ReadyTimeout))
	defer cancel()

	// Step 2: build the command line and take one of the machine-wide
	// guest slots.
	args, err := qemuArgs(opts)
	if err != nil {
		t.Fatalf("boot %s: %v", opts.Name, err)
	}
	slot, err := acquireSlot(ctx)
	if err != nil {
		t.Fatalf("boot %s: %v", opts.Name, err)
	}

	// Step 3: start QEMU with its console on a pipe pair.
	g := &Guest{t: t, name: opts.Name, log: newSerialLog(), slot: slot}
	start := time.Now()
	if err := g.start(opts, args); err != nil {
		slot.release()
		t.Fatalf("boot %s: %v", opts.Name, err)
	}
	t.Cleanup(g.Close)

	// Step 4: wait for the ready marker, or the marker of a failed set-up.
	ready, err := waitFor(ctx, g.log, 0, func(text []byte) (bool, bool) {
		switch {
		case strings.Contains(string(text), ReadyMarker):
			return true, true
		case strings.Contains(string(text), failedMarker):
			return false, true
		}
		return false, false
	})
	if err == nil && !ready {
		err = errors.New("guest init reported " + failedMarker)
	}
	if err != nil {
		t.Fatalf("boot %s: %v\nqemu %s\nserial log:\n%s", opts.Name, err, strings.Join(args, " "), g.log)
	}
	g.BootTime = time.Since(start)
	t.Logf("guest %s ready after %s (%s)", opts.Name, g.BootTime.Round(time.Millisecond), opts.Machine)
	return g
}

// qemuArgs returns the full QEMU command line for opts, without the
// `ip netns exec` prefix.
func qemuArgs(opts Options) ([]string, error) {
	var machine, kernel string
	switch opts.Machine {
	case MachineMicrovm:
		machine, kernel = "microvm,pcie=on", opts.Image.Kernel
	case MachineQ35:
		machine, kernel = "q35", opts.Image.CompressedKernel
	default:
		return nil, fmt.Errorf("unknown machine type %q: use %q or %q", opts.Machine, MachineMicrovm, MachineQ35)
	}

	cmdline := []string{"console=ttyS0", "panic=-1", "quiet"}
	if khz, err := hostTSCKHz(); err == nil {
		// Without a known TSC rate the guest calibrates it early in boot,
		// and that calibration can stall when the host is busy.
		cmdline = append(cmdline, "tsc_early_khz="+strconv.Itoa(khz))
	}
	if opts.KernelArgs != "" {
		cmdline = append(cmdline, opts.KernelArgs)
	}

	args := []string{
		"-machine", machine,
		"-accel", "tcg",
		"-smp", "1",
		"-m", strconv.Itoa(opts.MemoryMB),
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-monitor", "none",
		"-serial", "stdio",
		"-no-reboot",
		"-kernel", kernel,
		"-initrd", opts.Image.Initramfs,
		"-append", strings.Join(cmdline, " "),
	}
	return append(args, opts.NetArgs...), nil
}

var cpuMHzPattern = regexp.MustCompile(`(?m)^cpu MHz\s*:\s*([0-9.]+)`)

// hostTSCKHz reads the host CPU's clock rate in kHz from /proc/cpuinfo.
// NOTE: this assumes the guest's TSC ticks at the host's rate under TCG on
// an x86 host. Boots here agree, but QEMU's sources were not checked.
func hostTSCKHz() (int, error) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0, fmt.Errorf("read cpu clock rate: %w", err)
	}
	m := cpuMHzPattern.FindSubmatch(data)
	if m == nil {
		return 0, errors.New("read cpu clock rate: no \"cpu MHz\" line in /proc/cpuinfo")
	}
	mhz, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || mhz <= 0 {
		return 0, fmt.Errorf("read cpu clock rate: invalid cpu MHz %q", m[1])
	}
	return int(mhz * 1000), nil
}

// start launches QEMU (through `ip netns exec` when a namespace is given)
// and copies its output into the serial log.
func (g *Guest) start(opts Options, args []string) error {
	name := "qemu-system-x86_64"
	if opts.Netns != "" {
		// ip netns exec replaces itself with QEMU, so the pid is QEMU's.
		args = append([]string{"netns", "exec", opts.Netns, name}, args...)
		name = "ip"
	}
	cmd := exec.Command(name, args...)
	cmd.ExtraFiles = opts.Files
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("create console input pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create console output pipe: %w", err)
	}
	cmd.Stdout = outW
	cmd.Stderr = outW
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	outW.Close()

	g.cmd = cmd
	g.stdin = stdin
	go func() {
		_, _ = io.Copy(g.log, outR)
		outR.Close()
		g.log.close()
	}()
	return nil
}

// Close kills QEMU by its pid, reaps it and frees its guest slot. When the
// test has failed, it logs the serial console output. Boot registers Close
// with t.Cleanup; calling it earlier is allowed, and later calls do nothing.
func (g *Guest) Close() {
	g.closeOnce.Do(func() {
		_ = g.cmd.Process.Kill()
		_ = g.cmd.Wait()
		_ = g.stdin.Close()
		g.slot.release()
		if g.t.Failed() {
			g.t.Logf("serial log of guest %s:\n%s", g.name, g.log)
		}
	})
}

// Log returns everything the guest printed on its console so far.
func (g *Guest) Log() string {
	return g.log.String()
}

// Pid returns QEMU's process id.
func (g *Guest) Pid() int {
	return g.cmd.Process.Pid
}

// Run runs a shell command in the guest and returns its output (stdout and
// stderr merged) and exit code. The guest kills a command after 120 s. Run
// fails the test when the guest does not answer; a non-zero exit code is
// returned, not treated as failure.
func (g *Guest) Run(command string) (output string, rc int) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultRunTimeout)
	defer cancel()
	output, rc, err := g.Exec(ctx, command)
	if err != nil {
		g.t.Fatalf("guest %s: %v", g.name, err)
	}
	return output, rc
}

// MustRun runs a shell command in the guest and fails the test unless it
// exits with 0. It returns the output.
func (g *Guest) MustRun(command string) string {
	g.t.Helper()
	out, rc := g.Run(command)
	if rc != 0 {
		g.t.Fatalf("guest %s: %q exited with %d:\n%s", g.name, command, rc, out)
	}
	return out
}

// Exec is Run without the test: it returns an error when the command cannot
// be sent, ctx ends first, or the guest is gone.
func (g *Guest) Exec(ctx context.Context, command string) (output string, rc int, err error) {
	if strings.ContainsFunc(command, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return "", 0, fmt.Errorf("run %q: commands must be one line without control characters", command)
	}

	g.runMu.Lock()
	defer g.runMu.Unlock()
	g.next++
	id := strconv.Itoa(g.next)
	from := g.log.size()
	if _, err := io.WriteString(g.stdin, "KVMNET-CMD "+id+" "+command+"\n"); err != nil {
		return "", 0, fmt.Errorf("run %q: write to console: %w", command, err)
	}

	begin := "KVMNET-CMD-BEGIN " + id + "\n"
	end := regexp.MustCompile(`KVMNET-CMD-END ` + id + ` rc=(-?[0-9]+)\n`)
	type result struct {
		output string
		rc     int
	}
	res, err := waitFor(ctx, g.log, from, func(text []byte) (result, bool) {
		s := string(text)
		b := strings.Index(s, begin)
		if b < 0 {
			return result{}, false
		}
		s = s[b+len(begin):]
		loc := end.FindStringSubmatchIndex(s)
		if loc == nil {
			return result{}, false
		}
		rc, _ := strconv.Atoi(s[loc[2]:loc[3]])
		return result{output: s[:loc[0]], rc: rc}, true
	})
	if err != nil {
		return "", 0, fmt.Errorf("run %q: %w", command, err)
	}
	return res.output, res.rc, nil
}
