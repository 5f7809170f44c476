package kvmnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/kvmnet/kvmnet/internal/firewall"
	"github.com/kvmnet/kvmnet/internal/ipam"
	"github.com/kvmnet/kvmnet/internal/link"
	"github.com/kvmnet/kvmnet/internal/netconf"
	"github.com/kvmnet/kvmnet/internal/state"
	"github.com/kvmnet/kvmnet/internal/vmid"
)

// Kinds of objects that GC removes.
const (
	GCRecord      = "record"
	GCLink        = "link"
	GCFirewall    = "firewall"
	GCReservation = "reservation"
	GCBridge      = "bridge"
	GCLockFile    = "lock-file"
	GCTempFile    = "temp-file"
	GCDeviceNode  = "device-node"
)

// GCItem is one object that GC removed or, in a dry run, would remove.
type GCItem struct {
	// Kind is one of GCRecord (an incomplete or corrupt state record),
	// GCLink, GCDeviceNode (of a macvtap), GCFirewall, GCReservation,
	// GCBridge, GCLockFile and GCTempFile.
	Kind string `json:"kind"`
	// VM is the VM id that owned the object; empty for a bridge.
	VM string `json:"vm,omitempty"`
	// Object names the object: a link name, "NETWORK/IP" for a reservation,
	// a file path, or the VM id for firewall entries.
	Object string `json:"object"`
	// Action is the removal, e.g. "complete teardown of" or "release with
	// IPAM DEL".
	Action string `json:"action"`
	// Done is true when the action ran, false in a dry run or on error.
	Done bool `json:"done"`
	// Error is the failure of the action, if any.
	Error string `json:"error,omitempty"`
}

// String formats the item as one line of the gc report.
func (it GCItem) String() string {
	owner := "-"
	if it.VM != "" {
		owner = "vm " + it.VM
	}
	switch {
	case it.Error != "":
		return fmt.Sprintf("%s: %s %s %s failed: %s", owner, it.Action, it.Kind, it.Object, it.Error)
	case !it.Done:
		return fmt.Sprintf("%s: would %s %s %s", owner, it.Action, it.Kind, it.Object)
	}
	return fmt.Sprintf("%s: %s %s %s: done", owner, it.Action, it.Kind, it.Object)
}

// gcFirewall is the part of the firewall that GC uses: the VM ids that own
// entries, and removal of every entry of one VM id.
type gcFirewall interface {
	Owners() ([]string, error)
	RemoveOwner(id string) error
}

// GC removes what belongs to kvmnet but has no live VM:
//
//   - state records in phase creating or removing whose VM lock is free
//     (the up or down that wrote them was killed): their teardown is
//     completed;
//   - links with the alias "kvmnet vm=ID", firewall entries of VM ID, and
//     reservations held by VM ID in the data dir of the built-in networks,
//     when ID has no record;
//   - bridges kvmnet created that no link is enslaved to;
//   - lock files and temporary record files of VM ids without a record.
//
// GC takes each VM's lock without waiting before touching its objects and
// skips a VM whose lock is held, so it is safe while other VMs come up or go
// down. A record with a newer format version is left alone; a corrupt record
// is removed after the objects that carry its VM id. With dryRun, GC only
// lists what it would remove. The error joins the failures of every item.
func (m *Manager) GC(ctx context.Context, dryRun bool) ([]GCItem, error) {
	g := &gcRun{m: m, ctx: ctx, dryRun: dryRun, items: []GCItem{}, removedLinks: map[string]bool{}}
	defer func() {
		if g.fw != nil {
			closeGCFirewall(g.fw)
		}
	}()

	// Incomplete records first: their teardown removes most residue.
	ids, err := m.store.List()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		g.collectRecord(id)
	}

	// Then objects that carry the id of a VM without a record.
	owners, err := g.scanOwners()
	if err != nil {
		return g.items, errors.Join(append(g.errs, err)...)
	}
	for _, id := range sortedKeys(owners) {
		g.collectOrphans(id, owners[id])
	}

	// Last, bridges and firewall tables that the removals above may have
	// emptied.
	g.collectBridges()
	g.pruneFirewall()
	return g.items, errors.Join(g.errs...)
}

// gcRun is the state of one GC call.
type gcRun struct {
	m      *Manager
	ctx    context.Context
	dryRun bool
	fw     gcFirewall
	items  []GCItem
	errs   []error
	// files are the networks of the net dirs, loaded on first use.
	files []*netconf.Network
	// filesLoaded is set once files was loaded.
	filesLoaded bool
	// removedLinks are the links this run removes or, in a dry run, would
	// remove.
	removedLinks map[string]bool
}

// do records an item and, unless this is a dry run, runs its action.
func (g *gcRun) do(item GCItem, action func() error) {
	if !g.dryRun {
		if err := action(); err != nil {
			item.Error = err.Error()
			g.errs = append(g.errs, fmt.Errorf("gc: %s %s %s: %w", item.Action, item.Kind, item.Object, err))
		} else {
			item.Done = true
		}
	}
	g.items = append(g.items, item)
}

// collectRecord completes the teardown of the record of id when it is
// incomplete and its lock is free.
func (g *gcRun) collectRecord(id string) {
	lock, ok, err := g.m.tryLockVM(id)
	if err != nil {
		g.errs = append(g.errs, err)
		return
	}
	if !ok {
		g.m.log.Info("gc: vm lock held by a running up or down, skipped", "vm", id)
		return
	}
	defer g.release(lock, id)

	rec, err := g.m.store.Load(id)
	if err != nil {
		// A missing record went away since List; a corrupt one is handled
		// with the orphans of its id.
		return
	}
	if rec.Phase == state.PhaseUp {
		return
	}
	for _, a := range rec.Attachments {
		g.removedLinks[a.HostDevice] = true
	}
	item := GCItem{Kind: GCRecord, VM: id, Object: g.m.recordPath(id), Action: "complete teardown of"}
	g.do(item, func() error { return g.m.teardown(g.ctx, rec) })
}

// ownedObjects are the objects that carry one VM id.
type ownedObjects struct {
	links        []string
	firewall     bool
	reservations []reservation
	lockFile     bool
	tempFiles    []string
}

// reservation is one host-local reservation file in the data dir of the
// built-in networks.
type reservation struct {
	network string
	ip      netip.Addr
	path    string
	ifName  string
}

// scanOwners lists kvmnet's objects by the VM id they carry: links by
// alias, firewall entries, reservations, lock and temporary files.
func (g *gcRun) scanOwners() (map[string]*ownedObjects, error) {
	owners := map[string]*ownedObjects{}
	get := func(id string) *ownedObjects {
		if owners[id] == nil {
			owners[id] = &ownedObjects{}
		}
		return owners[id]
	}

	h, err := link.New()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.Owned()
	if err != nil {
		return nil, err
	}
	for name, alias := range links {
		if id := link.OwnerOf(alias); vmid.Validate(id) == nil {
			get(id).links = append(get(id).links, name)
		}
	}

	fw, err := g.m.newGCFirewall()
	if err != nil {
		g.errs = append(g.errs, fmt.Errorf("gc: open firewall: %w", err))
	} else {
		g.fw = fw
		ids, err := fw.Owners()
		if err != nil {
			g.errs = append(g.errs, fmt.Errorf("gc: list firewall owners: %w", err))
		}
		for _, id := range ids {
			if vmid.Validate(id) == nil {
				get(id).firewall = true
			}
		}
	}

	reservations, err := scanReservations(g.m.ipamDataDir())
	if err != nil {
		return nil, err
	}
	for id, list := range reservations {
		get(id).reservations = list
	}

	if err := g.scanStateDir(get); err != nil {
		return nil, err
	}
	return owners, nil
}

// scanStateDir adds the lock files and temporary record files of the state
// dir to their VM ids.
func (g *gcRun) scanStateDir(get func(string) *ownedObjects) error {
	entries, err := os.ReadDir(g.m.opts.StateDir)
	if err != nil {
		return fmt.Errorf("gc: list state dir %s: %w", g.m.opts.StateDir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, ".lock"); ok && vmid.Validate(id) == nil {
			get(id).lockFile = true
			continue
		}
		// state.Store.Save writes ".ID.RANDOM.tmp" and renames it; a killed
		// process leaves it behind.
		if rest, ok := strings.CutPrefix(name, "."); ok {
			if rest, ok = strings.CutSuffix(rest, ".tmp"); ok {
				if i := strings.LastIndexByte(rest, '.'); i > 0 && vmid.Validate(rest[:i]) == nil {
					o := get(rest[:i])
					o.tempFiles = append(o.tempFiles, filepath.Join(g.m.opts.StateDir, name))
				}
			}
		}
	}
	return nil
}

// collectOrphans removes the objects of id when id has no record.
func (g *gcRun) collectOrphans(id string, objs *ownedObjects) {
	lock, ok, err := g.m.tryLockVM(id)
	if err != nil {
		g.errs = append(g.errs, err)
		return
	}
	if !ok {
		g.m.log.Info("gc: vm lock held by a running up or down, skipped", "vm", id)
		return
	}
	defer g.release(lock, id)

	_, err = g.m.store.Load(id)
	corrupt := false
	switch {
	case err == nil:
		return // live, or incomplete with a teardown that failed above
	case errors.Is(err, state.ErrNotFound):
	case g.m.recordIsNewer(id):
		g.m.log.Info("gc: record has a newer format version, left alone", "vm", id)
		return
	default:
		corrupt = true
	}

	for _, name := range objs.links {
		g.removedLinks[name] = true
		g.do(GCItem{Kind: GCLink, VM: id, Object: name, Action: "delete"}, func() error {
			h, err := link.New()
			if err != nil {
				return err
			}
			defer h.Close()
			return h.DeleteOwned(name, link.VMAlias(id))
		})
		node := filepath.Join(g.m.devDir(), name)
		if _, err := os.Lstat(node); err == nil {
			g.do(GCItem{Kind: GCDeviceNode, VM: id, Object: node, Action: "remove"}, func() error {
				return removeIfExists(node)
			})
		}
	}
	if objs.firewall && g.fw != nil {
		g.do(GCItem{Kind: GCFirewall, VM: id, Object: id, Action: "remove entries of"}, func() error {
			return g.m.withShared(func() error { return g.fw.RemoveOwner(id) })
		})
	}
	for _, r := range objs.reservations {
		g.collectReservation(id, r)
	}
	for _, path := range objs.tempFiles {
		g.do(GCItem{Kind: GCTempFile, VM: id, Object: path, Action: "remove"}, func() error {
			return removeIfExists(path)
		})
	}
	if corrupt {
		path := g.m.recordPath(id)
		g.do(GCItem{Kind: GCRecord, VM: id, Object: path, Action: "remove corrupt"}, func() error {
			return g.m.store.Delete(id)
		})
	}
	if objs.lockFile {
		// release removes the lock file of a VM without a record.
		g.items = append(g.items, GCItem{Kind: GCLockFile, VM: id, Object: g.m.lockPath(id), Action: "remove", Done: !g.dryRun})
	}
}

// collectReservation releases one reservation: with IPAM DEL when the
// network's config is known, by removing the file otherwise or when DEL
// left it in place.
func (g *gcRun) collectReservation(id string, r reservation) {
	object := r.network + "/" + r.ip.String()
	n := g.reservationNetwork(r.network)
	if n != nil && r.ifName != "" {
		req := ipam.Request{
			Config:      n.Bytes,
			PluginType:  n.Conf.IPAM.Type,
			ContainerID: id,
			IfName:      r.ifName,
			NetNS:       "/proc/self/ns/net",
			Path:        g.m.opts.CNIPath,
		}
		g.do(GCItem{Kind: GCReservation, VM: id, Object: object, Action: "release with IPAM DEL"}, func() error {
			return ipam.Del(g.ctx, req)
		})
		if _, err := os.Stat(r.path); err != nil {
			return
		}
		if !g.dryRun {
			g.m.log.Warn("gc: IPAM DEL left the reservation file, removing it", "vm", id, "addr", object)
		}
	}
	g.do(GCItem{Kind: GCReservation, VM: id, Object: object, Action: "remove file of"}, func() error {
		return removeReservationFile(r.path)
	})
}

// collectBridges removes bridges kvmnet created that no link is enslaved to.
// It runs under the shared lock, like the up that enslaves taps to them.
func (g *gcRun) collectBridges() {
	err := g.m.withShared(func() error {
		h, err := link.New()
		if err != nil {
			return err
		}
		defer h.Close()
		links, err := h.Owned()
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(links) {
			if links[name] != link.BridgeAlias {
				continue
			}
			if g.dryRun {
				// Links the dry run would delete still hold their bridge.
				if unused, err := bridgeUnused(name, g.removedLinks, false); err == nil && unused {
					g.items = append(g.items, GCItem{Kind: GCBridge, Object: name, Action: "delete"})
				}
				continue
			}
			removed, err := h.DeleteBridgeIfUnused(name)
			if err != nil {
				g.items = append(g.items, GCItem{Kind: GCBridge, Object: name, Action: "delete", Error: err.Error()})
				g.errs = append(g.errs, fmt.Errorf("gc: %w", err))
			} else if removed {
				g.items = append(g.items, GCItem{Kind: GCBridge, Object: name, Action: "delete", Done: true})
			}
		}
		return g.collectBridgeAddrs(h)
	})
	if err != nil {
		g.errs = append(g.errs, fmt.Errorf("gc: bridges: %w", err))
	}
}

// maxDumpTries bounds the retries of a netlink dump that the kernel
// interrupted because links changed while it ran, as they do whenever
// other VMs come up or go down.
const maxDumpTries = 10

// retryDump runs dump again while netlink reports the dump as interrupted.
func retryDump(dump func() error) error {
	var err error
	for range maxDumpTries {
		if err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// collectBridgeAddrs removes the gateway addresses that kvmnet added to
// bridges it did not create, once no link of kvmnet is enslaved to them.
// They are listed in <state-dir>/bridges, which down normally empties.
// The caller holds the shared lock.
func (g *gcRun) collectBridgeAddrs(h *link.Handle) error {
	entries, err := os.ReadDir(filepath.Join(g.m.opts.StateDir, "bridges"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list bridge address lists: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validIfName(name) {
			continue
		}
		addrs, err := g.m.readBridgeAddrs(name)
		if err != nil || len(addrs) == 0 {
			continue
		}
		unused, err := bridgeUnused(name, g.removedLinks, true)
		if err != nil || !unused {
			continue
		}
		object := fmt.Sprintf("%s %v", name, addrs)
		g.do(GCItem{Kind: GCBridge, Object: object, Action: "remove gateway addresses of"}, func() error {
			return g.m.releaseBridge(h, "", name)
		})
	}
	return nil
}

// pruneFirewall deletes kvmnet's nftables tables once no VM owns an entry
// in them, as the down of the last VM does. It runs under the shared lock,
// like up's firewall batch, so that no up loses its entries to it. A dry
// run does not report the tables.
func (g *gcRun) pruneFirewall() {
	if g.dryRun || g.fw == nil {
		return
	}
	err := g.m.withShared(func() error {
		fw, err := firewall.New()
		if err != nil {
			return err
		}
		defer fw.Close()
		pruned, err := fw.PruneIfUnused()
		if pruned {
			g.items = append(g.items, GCItem{Kind: GCFirewall, Object: "kvmnet tables", Action: "delete unused", Done: true})
		}
		return err
	})
	if err != nil && !errors.Is(err, firewall.ErrUnsupported) {
		g.errs = append(g.errs, fmt.Errorf("gc: delete unused firewall tables: %w", err))
	}
}

// bridgeUnused reports whether every link enslaved to bridge name is in
// removed, so that a run that removes those links would delete the bridge.
// With ownedOnly, only links with a kvmnet alias count. A missing bridge
// is unused.
func bridgeUnused(name string, removed map[string]bool, ownedOnly bool) (bool, error) {
	br, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	var all []netlink.Link
	err = retryDump(func() error {
		var err error
		all, err = netlink.LinkList()
		return err
	})
	if err != nil {
		return false, err
	}
	for _, l := range all {
		if ownedOnly && !strings.HasPrefix(l.Attrs().Alias, link.AliasPrefix) {
			continue
		}
		if l.Attrs().MasterIndex == br.Attrs().Index && !removed[l.Attrs().Name] {
			return false, nil
		}
	}
	return true, nil
}

// release releases a lock taken by tryLockVM. The lock file goes too when
// tryLockVM created it, or when the VM has no record left, except in a dry
// run, which leaves files as it found them.
func (g *gcRun) release(lock *vmLock, id string) {
	_, err := os.Stat(g.m.recordPath(id))
	remove := !lock.existed || (errors.Is(err, os.ErrNotExist) && !g.dryRun)
	if err := lock.release(remove); err != nil {
		g.m.log.Warn("gc: could not release vm lock", "vm", id, "err", err)
	}
}

func (m *Manager) recordPath(id string) string { return filepath.Join(m.opts.StateDir, id+".json") }

func (m *Manager) lockPath(id string) string { return filepath.Join(m.opts.StateDir, id+".lock") }

// recordIsNewer reports whether the record of id carries a format version
// newer than this build reads. Such a record is never touched.
func (m *Manager) recordIsNewer(id string) bool {
	data, err := os.ReadFile(m.recordPath(id))
	if err != nil {
		return false
	}
	var probe struct {
		Version int `json:"version"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.Version > state.Version
}

// reservationNetwork returns the config that owns reservations of network
// in the built-in data dir: a config from the net dirs whose ipam dataDir is
// that dir, else the built-in of that name, else nil.
func (g *gcRun) reservationNetwork(network string) *netconf.Network {
	dataDir := g.m.ipamDataDir()
	if !g.filesLoaded {
		files, _, err := netconf.Load(g.m.opts.NetDirs, dataDir)
		if err != nil {
			g.m.log.Warn("gc: net dirs unreadable, using the built-in configs only", "err", err)
		}
		g.files, g.filesLoaded = files, true
	}
	for _, n := range g.files {
		var conf struct {
			IPAM struct {
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		}
		if n.Name == network && json.Unmarshal(n.Bytes, &conf) == nil && filepath.Clean(conf.IPAM.DataDir) == dataDir {
			return n
		}
	}
	for _, n := range netconf.Builtins(dataDir) {
		if n.Name == network {
			return n
		}
	}
	return nil
}

// maxReservationSize bounds the read of a reservation file; host-local
// writes a container id and an interface name.
const maxReservationSize = 4 << 10

// scanReservations lists the reservations under dataDir by VM id. A
// reservation is a file named by its IP in dataDir/NETWORK whose first line
// is the container id. host-local's lock and last_reserved_ip files are
// skipped, and so are files of container ids that are not VM ids.
func scanReservations(dataDir string) (map[string][]reservation, error) {
	out := map[string][]reservation{}
	networks, err := os.ReadDir(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gc: list IPAM data dir %s: %w", dataDir, err)
	}
	for _, network := range networks {
		if !network.IsDir() {
			continue
		}
		dir := filepath.Join(dataDir, network.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("gc: list IPAM data dir %s: %w", dir, err)
		}
		for _, f := range files {
			ip, err := netip.ParseAddr(f.Name())
			if err != nil || !f.Type().IsRegular() {
				continue
			}
			path := filepath.Join(dir, f.Name())
			data, err := readHead(path, maxReservationSize)
			if err != nil {
				continue // released since the listing
			}
			id, ifName, err := parseReservation(data)
			if err != nil {
				continue
			}
			out[id] = append(out[id], reservation{network: network.Name(), ip: ip, path: path, ifName: ifName})
		}
	}
	return out, nil
}

// parseReservation parses a host-local reservation file: the container id,
// then "\r\n" and the interface name (host-local before v0.8 wrote the id
// alone). It fails unless the id is a valid VM id. An interface name that
// is not a valid link name is returned as "".
func parseReservation(data []byte) (id, ifName string, err error) {
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	id = strings.TrimSpace(string(first))
	if err := vmid.Validate(id); err != nil {
		return "", "", fmt.Errorf("reservation of a container that is not a kvmnet vm: %w", err)
	}
	second, _, _ := bytes.Cut(rest, []byte("\n"))
	ifName = strings.TrimSpace(string(second))
	if !validIfName(ifName) {
		ifName = ""
	}
	return id, ifName, nil
}

// validIfName checks a link name as the kernel does: 1 to 15 bytes, no
// '/', ':' or whitespace, and not "." or "..".
func validIfName(name string) bool {
	if name == "" || len(name) > vmid.MaxLinkName || name == "." || name == ".." {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' {
			return false
		}
	}
	return true
}

func readHead(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// removeReservationFile removes a reservation file under host-local's lock
// of its network dir, so that it never disappears during a host-local run.
// host-local creates the lock file before its first reservation, so a dir
// without one has no host-local user to exclude.
func removeReservationFile(path string) error {
	lockPath := filepath.Join(filepath.Dir(path), "lock")
	f, err := os.OpenFile(lockPath, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return removeIfExists(path)
	}
	if err != nil {
		return fmt.Errorf("open host-local lock %s: %w", lockPath, err)
	}
	defer f.Close()
	if err := flockRetry(f, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lockPath, err)
	}
	return removeIfExists(path)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

func flockRetry(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// vmLock is a VM lock taken without waiting. It uses the lock file of
// state.Store.LockVM, so it excludes up and down of the same VM id.
type vmLock struct {
	f    *os.File
	path string
	// existed reports whether the lock file was there before tryLockVM.
	existed bool
}

// tryLockVM takes the lock of VM id if it is free. It returns ok false
// when another process holds it.
func (m *Manager) tryLockVM(id string) (lock *vmLock, ok bool, err error) {
	path := m.lockPath(id)
	// A holder may remove the file while releasing; then the lock on the
	// old file protects nothing and the loop opens the new one.
	for range 100 {
		_, statErr := os.Stat(path)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("gc: open lock %s: %w", path, err)
		}
		err = flockRetry(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, false, nil
		}
		if err != nil {
			f.Close()
			return nil, false, fmt.Errorf("gc: lock %s: %w", path, err)
		}
		var held, current syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &current) == nil && held.Ino == current.Ino {
			return &vmLock{f: f, path: path, existed: statErr == nil}, true, nil
		}
		f.Close()
	}
	return nil, false, fmt.Errorf("gc: lock %s: the lock file keeps being replaced", path)
}

// release releases the lock, removing the lock file first when remove is
// set, as state.Lock.Remove does.
func (l *vmLock) release(remove bool) error {
	var err error
	if remove {
		err = removeIfExists(l.path)
	}
	return errors.Join(err, l.f.Close())
}

// closeGCFirewall closes fw when its implementation holds resources.
func closeGCFirewall(fw gcFirewall) {
	if c, ok := fw.(io.Closer); ok {
		c.Close()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
