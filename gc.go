package kvmnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
	GCClaim       = "address-claim"
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
//   - links with the alias "kvmnet vm=ID" and their macvtap device nodes,
//     firewall entries of VM ID, and reservations held by VM ID in the data
//     dir of the built-in networks, when ID has no record;
//   - bridges kvmnet created that no link is enslaved to, and gateway
//     addresses kvmnet added to other bridges that no kvmnet link uses;
//   - kvmnet's firewall tables once no VM owns an entry;
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
	// emptied, and the forwarding settings once no VM is left.
	g.collectBridges()
	g.pruneFirewall()
	if !dryRun {
		if err := m.withShared(m.restoreForwarding); err != nil {
			g.errs = append(g.errs, fmt.Errorf("gc: restore forwarding settings: %w", err))
		}
	}
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

// lockVM takes the lock of VM id without waiting. It reports false when
// the lock is held by a running up or down, which gc skips, or on an error,
// which it records.
func (g *gcRun) lockVM(id string) (*vmLock, bool) {
	lock, ok, err := g.m.tryLockVM(id)
	if err != nil {
		g.errs = append(g.errs, err)
		return nil, false
	}
	if !ok {
		g.m.log.Info("gc: vm lock held by a running up or down, skipped", "vm", id)
	}
	return lock, ok
}

// collectRecord completes the teardown of the record of id when it is
// incomplete and its lock is free.
func (g *gcRun) collectRecord(id string) {
	lock, ok := g.lockVM(id)
	if !ok {
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
	// claims are the files under <state-dir>/addrs that claim a guest
	// address for the VM.
	claims []string
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
			switch {
			case vmid.Validate(id) == nil:
				get(id).firewall = true
			case strings.Contains(id, "~"):
				// The tag of a long VM id whose record is gone: no lock
				// can be taken by that name, and no live VM carries it.
				tag := id
				g.do(GCItem{Kind: GCFirewall, Object: tag, Action: "remove entries of"}, func() error {
					return g.m.withShared(func() error { return fw.RemoveOwner(tag) })
				})
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
		if id := tempRecordOwner(name); id != "" {
			o := get(id)
			o.tempFiles = append(o.tempFiles, filepath.Join(g.m.opts.StateDir, name))
		}
	}
	claims, err := os.ReadDir(filepath.Join(g.m.opts.StateDir, "addrs"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gc: list address claims: %w", err)
	}
	for _, e := range claims {
		path := filepath.Join(g.m.opts.StateDir, "addrs", e.Name())
		if id, _, ok := readClaim(path); ok && vmid.Validate(id) == nil && !strings.HasSuffix(path, ".tmp") {
			get(id).claims = append(get(id).claims, path)
			continue
		}
		// A claim without an owner: a temporary file of a killed up.
		g.do(GCItem{Kind: GCClaim, Object: path, Action: "remove"}, func() error {
			return g.m.withShared(func() error {
				err := removeIfExists(path)
				removeDirIfEmpty(filepath.Dir(path))
				return err
			})
		})
	}
	return nil
}

// collectOrphans removes the objects of id when id has no record.
func (g *gcRun) collectOrphans(id string, objs *ownedObjects) {
	lock, ok := g.lockVM(id)
	if !ok {
		return
	}
	defer g.release(lock, id)

	_, err := g.m.store.Load(id)
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
	for _, path := range objs.claims {
		g.do(GCItem{Kind: GCClaim, VM: id, Object: path, Action: "remove"}, func() error {
			return g.m.withShared(func() error {
				// Another VM may have taken the address over meanwhile.
				if owner, _, ok := readClaim(path); ok && owner != id {
					return nil
				}
				err := removeIfExists(path)
				removeDirIfEmpty(filepath.Dir(path))
				return err
			})
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
		// Bridges whose creator was killed before setting the alias.
		markers, _ := filepath.Glob(filepath.Join(g.m.opts.StateDir, "bridges", "*.creating"))
		for _, marker := range markers {
			name := strings.TrimSuffix(filepath.Base(marker), ".creating")
			if validIfName(name) && !g.dryRun {
				if err := g.m.adoptBridge(h, name); err != nil {
					g.errs = append(g.errs, fmt.Errorf("gc: %w", err))
				}
			}
		}
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
				if unused, err := bridgeUnused(h, name, g.removedLinks); err == nil && unused {
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

// collectBridgeAddrs removes the gateway addresses that kvmnet added to
// bridges it did not create, once no link is enslaved to them.
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
		unused, err := bridgeUnused(h, name, g.removedLinks)
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
// removed, so that a run that removes those links leaves the bridge without
// ports. A missing bridge is unused.
func bridgeUnused(h *link.Handle, name string, removed map[string]bool) (bool, error) {
	slaves, err := h.Slaves(name)
	if err != nil {
		return false, err
	}
	for _, slave := range slaves {
		if !removed[slave] {
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
