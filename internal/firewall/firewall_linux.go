package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Firewall changes kvmnet's nftables tables in the network namespace of the
// thread that called New. Its methods may be called from any goroutine, one
// at a time. Add and Remove must run on a thread in that namespace when
// they set or restore route_localnet.
type Firewall struct {
	mu     sync.Mutex
	conn   *nftables.Conn // batches and dumps
	query  *netlink.Conn  // single-element and single-object lookups
	routes *vnl.Handle    // the IPv6 loopback routes
	ns     nsID
	layout *layout
}

// errLayoutRace means another process created a table between the check
// and the batch.
var errLayoutRace = errors.New("nftables table was created concurrently")

// New opens the firewall in the network namespace of the calling thread.
// Both netlink sockets stay bound to that namespace.
func New() (*Firewall, error) {
	ns, err := threadNetns()
	if err != nil {
		return nil, fmt.Errorf("open firewall: %w", err)
	}
	extAck := func(c *netlink.Conn) error { return c.SetOption(netlink.ExtendedAcknowledge, true) }
	conn, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(extAck))
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	query, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open netfilter netlink socket: %w", err), conn.CloseLasting())
	}
	if err := extAck(query); err != nil {
		return nil, errors.Join(fmt.Errorf("enable extended acks on netfilter netlink socket: %w", err), conn.CloseLasting(), query.Close())
	}
	routes, err := vnl.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open rtnetlink socket: %w", err), conn.CloseLasting(), query.Close())
	}
	return &Firewall{conn: conn, query: query, routes: routes, ns: ns, layout: newLayout()}, nil
}

// Close closes the netlink sockets. It changes no kernel state.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes.Close()
	return errors.Join(f.conn.CloseLasting(), f.query.Close())
}

// Add creates the VM's entries in one atomic batch, together with the tables,
// sets and base chains when they do not exist yet. It checks for port
// conflicts before it changes anything, and returns a *ConflictError (see
// ErrConflict) naming the port and the VM that holds it. An entry of
// another VM keyed by one of this VM's addresses is stale and is replaced.
// Adding a VM again replaces its entries.
//
// When a forward must be reachable from 127.0.0.1, Add then sets
// route_localnet on the device toward the guest; that part must run on a
// thread in the firewall's namespace. The Receipt records it.
func (f *Firewall) Add(vm VM) (Receipt, error) {
	p, err := newPlan(&vm)
	if err != nil {
		return Receipt{}, fmt.Errorf("add firewall entries for vm %s: %w", vm.ID, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.add(p)
	if errors.Is(err, errLayoutRace) {
		r, err = f.add(p)
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("add firewall entries for vm %s: %w", vm.ID, err)
	}
	return r, nil
}

func (f *Firewall) add(p *plan) (Receipt, error) {
	var receipt Receipt
	if needsThread(localnetKeys(p, receipt)) {
		if err := f.checkThread(); err != nil {
			return receipt, err
		}
	}

	// Read what exists: tables, then every element the plan touches.
	inet, err := f.inetPresent()
	if err != nil {
		return receipt, err
	}
	st, err := f.readState(p, inet)
	if err != nil {
		return receipt, err
	}

	// Conflicts end Add before anything changes.
	if err := f.checkConflicts(p, st); err != nil {
		return receipt, err
	}

	// Queue the batch: tables, elements, counts, guard chains, markers.
	if !inet {
		if err := f.layout.queueInet(f.conn); err != nil {
			return receipt, err
		}
	}
	if err := f.queueElements(p, st); err != nil {
		return receipt, err
	}
	for i := range p.guards {
		if err := queueGuard(f.conn, &p.guards[i], p.vm); err != nil {
			return receipt, err
		}
	}
	toEnable, err := f.queueLocalnet(p, st, &receipt)
	if err != nil {
		return receipt, err
	}

	// Send it.
	if err := f.conn.Flush(); err != nil {
		if !inet && errors.Is(err, unix.EEXIST) {
			return receipt, errLayoutRace
		}
		return receipt, fmt.Errorf("apply nftables batch: %w", err)
	}

	// Loopback changes come last; a failure undoes the batch.
	for _, k := range toEnable {
		if err := f.enableLocalnet(k); err != nil {
			return receipt, errors.Join(err, f.remove(p, receipt))
		}
	}
	return receipt, nil
}

// state is what readState found for a plan.
type state struct {
	// existing holds, per element of the plan, the element with the same key
	// (or the interval containing it), or nil.
	existing []*stored
	// anyClaim holds, per element of the plan that claims a port on a
	// specific host address, the element of the same port in the map of
	// every host address, or nil.
	anyClaim map[int]*stored
	// counts holds dnat_addr_count by key, for the keys of the plan's claims.
	counts map[string]uint32
	// markers holds, for the loopback devices of the plan, whether they are
	// in localnetN_changed.
	markers map[localnetKey]bool
	// subnets is the content of subnet4 and subnet6.
	subnets subnetCounts
}

func (f *Firewall) readState(p *plan, inetPresent bool) (*state, error) {
	st := &state{
		existing: make([]*stored, len(p.elements)),
		anyClaim: map[int]*stored{},
		counts:   map[string]uint32{},
		markers:  map[localnetKey]bool{},
		subnets:  subnetCounts{},
	}
	if !inetPresent {
		return st, nil
	}
	subnets, err := f.readSubnets()
	if err != nil {
		return nil, err
	}
	st.subnets = subnets
	sets := f.layout.sets
	var queries []elementQuery
	for _, e := range p.elements {
		queries = append(queries, elementQuery{set: sets[e.set], key: e.key})
	}
	anyIndex := map[int]int{}      // plan element -> query
	countIndex := map[string]int{} // count key -> query
	for i, e := range p.elements {
		if e.claim == nil {
			continue
		}
		key := string(e.claim.countKey())
		if _, ok := countIndex[key]; !ok {
			countIndex[key] = len(queries)
			queries = append(queries, elementQuery{set: sets[mapDNATAddrCount], key: []byte(key)})
		}
		if e.claim.hostIP.IsValid() {
			anyIndex[i] = len(queries)
			anyMap := pick(!e.claim.ipv6, mapDNAT4Any, mapDNAT6Any)
			queries = append(queries, elementQuery{set: sets[anyMap], key: concat(pad4([]byte{protoNumber(e.claim.proto)}), portBytes(e.claim.hostPort))})
		}
	}
	markerIndex := map[localnetKey]int{}
	for _, k := range localnetKeys(p, Receipt{}) {
		if _, ok := markerIndex[k]; !ok {
			markerIndex[k] = len(queries)
			_, changed := localnetSets(k.ipv6)
			queries = append(queries, elementQuery{set: sets[changed], key: ifname(k.device)})
		}
	}

	found, err := getElements(f.query, queries)
	if err != nil {
		return nil, err
	}
	copy(st.existing, found[:len(p.elements)])
	for i, q := range anyIndex {
		if found[q] != nil {
			st.anyClaim[i] = found[q]
		}
	}
	for key, q := range countIndex {
		if found[q] != nil && len(found[q].value) == 4 {
			st.counts[key] = binaryutil.BigEndian.Uint32(found[q].value)
		}
	}
	for k, q := range markerIndex {
		st.markers[k] = found[q] != nil
	}
	return st, nil
}

// checkConflicts returns the port conflicts of the plan, at most one per
// owner, joined.
func (f *Firewall) checkConflicts(p *plan, st *state) error {
	var errs []error
	reported := map[string]bool{}
	report := func(c *portClaim, hostIP netip.Addr, owner string) {
		if reported[owner] {
			return
		}
		reported[owner] = true
		errs = append(errs, &ConflictError{Port: c.hostPort, Proto: c.proto, HostIP: hostIP, Owner: owner})
	}

	var wildcard []*portClaim
	for i, e := range p.elements {
		if e.claim == nil {
			continue
		}
		if old := st.existing[i]; old != nil && old.owner != p.vm {
			report(e.claim, e.claim.hostIP, old.owner)
		}
		if any := st.anyClaim[i]; any != nil && any.owner != p.vm {
			report(e.claim, netip.Addr{}, any.owner)
		}
		if !e.claim.hostIP.IsValid() && st.counts[string(e.claim.countKey())] > 0 {
			wildcard = append(wildcard, e.claim)
		}
	}

	// A forward on every host address conflicts with a forward of the same
	// port on a specific address. dnat_addr_count says whether one exists;
	// only then are the maps of specific addresses read to find its owner.
	if len(wildcard) > 0 {
		for _, name := range []string{mapDNAT4Addr, mapDNAT6Addr} {
			elems, err := f.conn.GetSetElements(f.layout.sets[name])
			if err != nil {
				return fmt.Errorf("list elements of map %s: %w", name, err)
			}
			for _, e := range elems {
				other, ok := claimFromKey(name, e.Key)
				if !ok || e.Comment == p.vm {
					continue
				}
				for _, c := range wildcard {
					if c.ipv6 == other.ipv6 && c.proto == other.proto && c.hostPort == other.hostPort {
						report(c, other.hostIP, e.Comment)
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// queueElements queues the plan's elements, after deleting the elements
// they replace, and the counts of forwards on specific host addresses.
func (f *Firewall) queueElements(p *plan, st *state) error {
	deletes := map[string][]nftables.SetElement{}
	adds := map[string][]nftables.SetElement{}
	var order []string
	increments := map[string]uint32{}
	for i, e := range p.elements {
		if _, ok := adds[e.set]; !ok {
			order = append(order, e.set)
		}
		if old := st.existing[i]; old != nil {
			deletes[e.set] = append(deletes[e.set], nftables.SetElement{Key: old.key, KeyEnd: old.keyEnd})
		} else if e.claim != nil && e.claim.hostIP.IsValid() {
			increments[string(e.claim.countKey())]++
		}
		adds[e.set] = append(adds[e.set], nftables.SetElement{Key: e.key, KeyEnd: e.keyEnd, Val: e.value, Comment: p.vm})
	}
	for _, name := range order {
		if len(deletes[name]) > 0 {
			if err := f.conn.SetDeleteElements(f.layout.sets[name], deletes[name]); err != nil {
				return fmt.Errorf("queue deletion from set %s: %w", name, err)
			}
		}
	}
	for _, name := range order {
		if err := f.conn.SetAddElements(f.layout.sets[name], adds[name]); err != nil {
			return fmt.Errorf("queue elements of set %s: %w", name, err)
		}
	}
	for _, key := range sortedKeys(increments) {
		if err := f.queueCount(key, st.counts[key], st.counts[key]+increments[key]); err != nil {
			return err
		}
	}
	deltas := subnetDeltas{}
	deltas.addGuests(p, st)
	return f.queueSubnets(st.subnets, deltas)
}

// queueCount replaces a dnat_addr_count element; a count of 0 deletes it.
func (f *Firewall) queueCount(key string, old, updated uint32) error {
	set := f.layout.sets[mapDNATAddrCount]
	if old > 0 {
		if err := f.conn.SetDeleteElements(set, []nftables.SetElement{{Key: []byte(key)}}); err != nil {
			return fmt.Errorf("queue deletion from map %s: %w", set.Name, err)
		}
	}
	if updated > 0 {
		elem := nftables.SetElement{Key: []byte(key), Val: binaryutil.BigEndian.PutUint32(updated)}
		if err := f.conn.SetAddElements(set, []nftables.SetElement{elem}); err != nil {
			return fmt.Errorf("queue element of map %s: %w", set.Name, err)
		}
	}
	return nil
}

// Remove deletes the VM's entries in one batch: exactly the elements that
// carry the VM's id, so an element that another VM took over with a reused
// address stays. Entries already gone are skipped. When the VM was the last
// user of a route_localnet that kvmnet switched on, Remove switches it off
// (on the calling thread, like Add).
func (f *Firewall) Remove(vm VM, r Receipt) error {
	p, err := newPlan(&vm)
	if err != nil {
		return fmt.Errorf("remove firewall entries of vm %s: %w", vm.ID, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.remove(p, r); err != nil {
		return fmt.Errorf("remove firewall entries of vm %s: %w", vm.ID, err)
	}
	return nil
}

func (f *Firewall) remove(p *plan, r Receipt) error {
	keys := localnetKeys(p, r)
	if needsThread(keys) {
		if err := f.checkThread(); err != nil {
			return err
		}
	}
	inet, err := f.inetPresent()
	if err != nil {
		return err
	}

	var release []localnetKey
	if inet {
		st, err := f.readState(p, true)
		if err != nil {
			return err
		}
		var owned []ownedElement
		for i, e := range p.elements {
			if old := st.existing[i]; old != nil && old.owner == p.vm {
				owned = append(owned, ownedElement{set: e.set, elem: old})
			}
		}
		if release, err = f.queueRemoval(owned, st.counts, st.subnets, keys); err != nil {
			return err
		}
	}
	for _, g := range p.guards {
		if err := f.queueGuardRemoval(g.device, p.vm); err != nil {
			return err
		}
	}

	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("apply nftables batch: %w", err)
	}
	return f.disableAll(release)
}

type ownedElement struct {
	set  string
	elem *stored
}

// queueRemoval queues the deletion of owned elements, lowers the counts of
// forwards on specific host addresses, and releases the loopback changes of
// devices that lose their last user. counts holds the current count by key
// for every count the elements touch. It returns the devices whose loopback
// change must be undone after the batch.
func (f *Firewall) queueRemoval(owned []ownedElement, counts map[string]uint32, subnets subnetCounts, keys []localnetKey) ([]localnetKey, error) {
	bySet := map[string][]nftables.SetElement{}
	deltas := subnetDeltas{}
	var order []string
	decrements := map[string]uint32{}
	deleting := map[string]bool{}
	for _, o := range owned {
		if _, ok := bySet[o.set]; !ok {
			order = append(order, o.set)
		}
		bySet[o.set] = append(bySet[o.set], nftables.SetElement{Key: o.elem.key, KeyEnd: o.elem.keyEnd})
		if c, ok := claimFromKey(o.set, o.elem.key); ok && c.hostIP.IsValid() {
			decrements[string(c.countKey())]++
		}
		if o.set == setGuest4 || o.set == setGuest6 {
			deltas.change(o.set, o.elem.value, -1, false)
		}
		if o.set == setLocalnet4Users || o.set == setLocalnet6Users {
			deleting[o.set+string(o.elem.key)] = true
			if len(o.elem.key) > 16 {
				device := strings.TrimRight(string(o.elem.key[:16]), "\x00")
				keys = append(keys, localnetKey{device: device, ipv6: o.set == setLocalnet6Users})
			}
		}
	}
	for _, name := range order {
		if err := f.conn.SetDeleteElements(f.layout.sets[name], bySet[name]); err != nil {
			return nil, fmt.Errorf("queue deletion from set %s: %w", name, err)
		}
	}
	for _, key := range sortedKeys(decrements) {
		old := counts[key]
		if err := f.queueCount(key, old, old-min(old, decrements[key])); err != nil {
			return nil, err
		}
	}
	if err := f.queueSubnets(subnets, deltas); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return f.queueLocalnetRelease(keys, deleting)
}

// queueGuardRemoval queues the deletion of a device's guard table unless it
// is gone or its rules carry another owner's id.
func (f *Firewall) queueGuardRemoval(device, owner string) error {
	chain := guardChain(device)
	owners, exists, err := f.chainOwners(chain)
	if err != nil || !exists {
		return err
	}
	for _, o := range owners {
		if o != owner {
			return nil
		}
	}
	f.conn.DelTable(chain.Table)
	return nil
}

// chainOwners returns the comments of a chain's rules and whether the chain
// exists.
func (f *Firewall) chainOwners(chain *nftables.Chain) (owners []string, exists bool, err error) {
	exists, err = objectExists(f.query, unix.NFT_MSG_GETCHAIN, chain.Table.Family, []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(chain.Table.Name + "\x00")},
		{Type: unix.NFTA_CHAIN_NAME, Data: []byte(chain.Name + "\x00")},
	})
	if err != nil || !exists {
		return nil, exists, err
	}
	rules, err := f.conn.GetRules(chain.Table, chain)
	if err != nil {
		return nil, true, fmt.Errorf("list rules of chain %s: %w", chain.Name, err)
	}
	for _, r := range rules {
		if text, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
			owners = append(owners, text)
		}
	}
	slices.Sort(owners)
	return slices.Compact(owners), true, nil
}

// Owners returns the sorted ids of the VMs that have entries, for gc.
func (f *Firewall) Owners() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	owners, err := f.owners("")
	if err != nil {
		return nil, fmt.Errorf("list firewall owners: %w", err)
	}
	var ids []string
	for id := range owners.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// RemoveOwner deletes every entry that carries id, without a VM record, for
// gc. It reads whole sets, so it costs more than Remove. It releases
// route_localnet like Remove.
func (f *Firewall) RemoveOwner(id string) error {
	if err := validateVMID(id); err != nil {
		return fmt.Errorf("remove firewall entries of vm %s: %w", id, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.removeOwner(id); err != nil {
		return fmt.Errorf("remove firewall entries of vm %s: %w", id, err)
	}
	return nil
}

func (f *Firewall) removeOwner(id string) error {
	found, err := f.owners(id)
	if err != nil {
		return err
	}
	var release []localnetKey
	if len(found.elements) > 0 {
		if found.hasLocalnet4 {
			if err := f.checkThread(); err != nil {
				return err
			}
		}
		counts := map[string]uint32{}
		elems, err := f.conn.GetSetElements(f.layout.sets[mapDNATAddrCount])
		if err != nil {
			return fmt.Errorf("list elements of map %s: %w", mapDNATAddrCount, err)
		}
		for _, e := range elems {
			if len(e.Val) == 4 {
				counts[string(e.Key)] = binaryutil.BigEndian.Uint32(e.Val)
			}
		}
		subnets, err := f.readSubnets()
		if err != nil {
			return err
		}
		if release, err = f.queueRemoval(found.elements, counts, subnets, nil); err != nil {
			return err
		}
	}
	for _, table := range found.guards {
		f.conn.DelTable(table)
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("apply nftables batch: %w", err)
	}
	return f.disableAll(release)
}

// ownerScan is what owners found.
type ownerScan struct {
	ids map[string]bool
	// elements and chains are the entries of the requested id.
	elements []ownedElement
	guards   []*nftables.Table
	// hasLocalnet4 is set when id relies on a route_localnet sysctl.
	hasLocalnet4 bool
}

// owners reads every owned set and guard table. It collects all owner ids,
// and the entries of id when id is not empty.
func (f *Firewall) owners(id string) (*ownerScan, error) {
	scan := &ownerScan{ids: map[string]bool{}}
	inet, err := f.inetPresent()
	if err != nil {
		return nil, err
	}
	if inet {
		for _, name := range ownedSets {
			elems, err := f.conn.GetSetElements(f.layout.sets[name])
			if err != nil {
				return nil, fmt.Errorf("list elements of set %s: %w", name, err)
			}
			for _, e := range elems {
				if e.Comment == "" {
					continue
				}
				scan.ids[e.Comment] = true
				if id != "" && e.Comment == id {
					scan.elements = append(scan.elements, ownedElement{set: name, elem: fromElement(e)})
					scan.hasLocalnet4 = scan.hasLocalnet4 || name == setLocalnet4Users
				}
			}
		}
	}
	tables, err := f.guardTables()
	if err != nil {
		return nil, err
	}
	for _, table := range tables {
		owners, exists, err := f.chainOwners(&nftables.Chain{Name: guardChainName, Table: table})
		if err != nil {
			return nil, err
		}
		for _, o := range owners {
			scan.ids[o] = true
		}
		if exists && id != "" && slices.Equal(owners, []string{id}) {
			scan.guards = append(scan.guards, table)
		}
	}
	return scan, nil
}

// guardTables lists the netdev tables whose name has the guard prefix.
func (f *Firewall) guardTables() ([]*nftables.Table, error) {
	tables, err := f.conn.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return nil, fmt.Errorf("list netdev tables: %w", err)
	}
	var out []*nftables.Table
	for _, t := range tables {
		if strings.HasPrefix(t.Name, guardTablePrefix) {
			out = append(out, &nftables.Table{Name: t.Name, Family: nftables.TableFamilyNetdev})
		}
	}
	return out, nil
}

// ErrLayout is returned when table inet kvmnet exists without this
// build's layout marker.
var ErrLayout = errors.New("table inet kvmnet has another layout")

// inetPresent reports whether the inet table exists. A table without this
// build's layout marker (made by another kvmnet version, or by hand) is an
// error, because its sets would not match the planned elements.
func (f *Firewall) inetPresent() (bool, error) {
	t := f.layout.inet
	ok, err := objectExists(f.query, unix.NFT_MSG_GETTABLE, t.Family, []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: []byte(t.Name + "\x00")},
	})
	if err != nil {
		return false, fmt.Errorf("look up table %s: %w", t.Name, err)
	}
	if !ok {
		return false, nil
	}
	marked, err := objectExists(f.query, unix.NFT_MSG_GETSET, t.Family, []netlink.Attribute{
		{Type: unix.NFTA_SET_TABLE, Data: []byte(t.Name + "\x00")},
		{Type: unix.NFTA_SET_NAME, Data: []byte(setLayout + "\x00")},
	})
	if err != nil {
		return false, fmt.Errorf("look up set %s of table %s: %w", setLayout, t.Name, err)
	}
	if !marked {
		return false, fmt.Errorf("%w than this kvmnet's %s (made by another kvmnet version or by hand): take its VMs down with the kvmnet that made it, or delete it with 'nft delete table inet kvmnet' once no VM uses it", ErrLayout, setLayout)
	}
	return true, nil
}

// objectExists sends one nftables get request and reports whether the
// kernel found the object.
func objectExists(conn *netlink.Conn, msgType int, family nftables.TableFamily, attrs []netlink.Attribute) (bool, error) {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return false, err
	}
	_, err = conn.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType),
			Flags: netlink.Request,
		},
		Data: append([]byte{byte(family), unix.NFNETLINK_V0, 0, 0}, data...),
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
