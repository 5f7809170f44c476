package firewall

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/internal/netns"
	"github.com/kvmnet/kvmnet/internal/testenv"
)

const (
	// reachTimeout bounds a connection that must succeed.
	reachTimeout = 3 * time.Second
	// blockTimeout bounds a connection that must fail: a dropped SYN or
	// datagram gets no reply at all.
	blockTimeout = 700 * time.Millisecond
)

// serveTCP listens on addr inside ns and replies to each connection with the
// client address it sees, then closes the connection. The socket is created
// on a thread in ns, so it stays in ns.
func serveTCP(t testing.TB, ns *testenv.NS, addr string) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(ns.Path, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on tcp %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(reachTimeout))
			fmt.Fprintln(c, c.RemoteAddr())
			c.Close()
		}
	}()
}

// serveUDP replies to each datagram to addr inside ns with the client address
// it sees.
func serveUDP(t testing.TB, ns *testenv.NS, addr string) {
	t.Helper()
	var pc net.PacketConn
	err := netns.Do(ns.Path, func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on udp %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(from.String()), from)
		}
	}()
}

// seenTCP connects from ns to addr, from local when it is not empty, and
// returns the client address the server reported, without its port.
func seenTCP(ns *testenv.NS, local, addr string, timeout time.Duration) (string, error) {
	var seen string
	err := netns.Do(ns.Path, func() error {
		d := net.Dialer{Timeout: timeout}
		if local != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("read from %s: %w", addr, err)
		}
		seen = hostOf(strings.TrimSpace(line))
		return nil
	})
	return seen, err
}

// seenUDP sends a datagram from ns to addr and returns the client address
// the server reported, without its port.
func seenUDP(ns *testenv.NS, addr string, timeout time.Duration) (string, error) {
	var seen string
	err := netns.Do(ns.Path, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 128)
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("read from %s: %w", addr, err)
		}
		seen = hostOf(string(buf[:n]))
		return nil
	})
	return seen, err
}

func hostOf(hostPort string) string {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return hostPort
	}
	return host
}

// mustSee fails the test unless a TCP connection from ns to addr succeeds
// and the server saw want as the client address.
func mustSee(t testing.TB, ns *testenv.NS, addr, want string) {
	t.Helper()
	got, err := seenTCP(ns, "", addr, reachTimeout)
	if err != nil {
		t.Fatalf("connect from %s to %s: %v", ns.Name, addr, err)
	}
	if got != want {
		t.Errorf("connect from %s to %s: server saw client %s, want %s", ns.Name, addr, got, want)
	}
}

// mustNotReach fails the test if a TCP connection from ns to addr, from
// local when not empty, succeeds.
func mustNotReach(t testing.TB, ns *testenv.NS, local, addr string) {
	t.Helper()
	if got, err := seenTCP(ns, local, addr, blockTimeout); err == nil {
		t.Errorf("connect from %s (source %q) to %s: succeeded (server saw %s), want it blocked", ns.Name, local, addr, got)
	}
}
