package firewall

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// nsID identifies a network namespace by the device and inode of its
// nsfs file.
type nsID struct{ dev, ino uint64 }

func threadNetns() (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return nsID{}, fmt.Errorf("identify network namespace of the calling thread: %w", err)
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// localnetSysctl returns the key and /proc path of route_localnet on device.
func localnetSysctl(device string) (name, path string) {
	return "net.ipv4.conf." + device + ".route_localnet",
		filepath.Join("/proc/sys/net/ipv4/conf", device, "route_localnet")
}

// checkThread fails unless the calling thread is in the namespace the
// firewall was opened in. /proc/sys/net shows the sysctls of the namespace
// of the thread that opens the file, while the netlink sockets stay bound to
// the namespace of New.
func (f *Firewall) checkThread() error {
	id, err := threadNetns()
	if err != nil {
		return err
	}
	if id != f.ns {
		return errors.New("calling thread is not in the network namespace the firewall was opened in")
	}
	return nil
}

func readLocalnet(device string) (string, error) {
	name, path := localnetSysctl(device)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(data)), nil
}

func writeLocalnet(device, value string) error {
	name, path := localnetSysctl(device)
	if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s to %s: %w", name, value, err)
	}
	return nil
}
