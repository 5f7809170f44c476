// Package failpoint stops kvmnet at named points of up and down, so that
// tests can prove a crash or an error at any step leaves a state that down
// and gc can finish.
//
// Failpoints exist only in builds with the tag "failpoints"; in every other
// build Inject compiles to a function that returns nil. In a failpoints build
// the environment variable KVMNET_FAILPOINT selects one point and an action:
//
//	KVMNET_FAILPOINT=NAME[@INDEX]:ACTION
//
// NAME is one of Names(). INDEX limits a per-attachment point to the
// attachment with that index; without it the point fires the first time it
// is reached. ACTION is "kill" (the process sends itself SIGKILL) or "fail"
// (Inject returns an error naming the point).
package failpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// EnvVar is the environment variable that arms a failpoint.
const EnvVar = "KVMNET_FAILPOINT"

// Failpoints of up, in the order up reaches them.
const (
	UpRecordSaved      = "up.record-saved"
	UpDeviceCreated    = "up.device-created"
	UpBridgeEnsured    = "up.bridge-ensured"
	UpEnslaved         = "up.enslaved"
	UpIPAMStartedSaved = "up.ipam-started-saved"
	UpIPAMAdded        = "up.ipam-added"
	UpIPAMResultSaved  = "up.ipam-result-saved"
	UpLinkUp           = "up.link-up"
	UpAddressAdded     = "up.address-added"
	UpRouteAdded       = "up.route-added"
	UpFirewallPlanned  = "up.firewall-planned"
	UpFirewallApplied  = "up.firewall-applied"
	UpCommitted        = "up.committed"
)

// Failpoints of down, in the order down reaches them. Down walks the
// attachments in reverse order.
const (
	DownRemovingSaved   = "down.removing-saved"
	DownFirewallRemoved = "down.firewall-removed"
	DownLinkRemoved     = "down.link-removed"
	DownIPAMReleased    = "down.ipam-released"
	DownBridgeRemoved   = "down.bridge-removed"
	DownRecordDeleted   = "down.record-deleted"
)

// Point describes one failpoint.
type Point struct {
	// Name is the failpoint's name, as used in KVMNET_FAILPOINT.
	Name string
	// PerAttachment is true for points reached once per attachment (or
	// once per address or route of an attachment), which accept @INDEX.
	PerAttachment bool
	// BridgeOnly is true for points reached only by bridge attachments.
	BridgeOnly bool
}

// Points returns every failpoint, in the order up and then down reach them.
func Points() []Point {
	return []Point{
		{Name: UpRecordSaved},
		{Name: UpDeviceCreated, PerAttachment: true},
		{Name: UpBridgeEnsured, PerAttachment: true, BridgeOnly: true},
		{Name: UpEnslaved, PerAttachment: true, BridgeOnly: true},
		{Name: UpIPAMStartedSaved, PerAttachment: true},
		{Name: UpIPAMAdded, PerAttachment: true},
		{Name: UpIPAMResultSaved, PerAttachment: true},
		{Name: UpLinkUp, PerAttachment: true},
		{Name: UpAddressAdded, PerAttachment: true},
		{Name: UpRouteAdded, PerAttachment: true},
		{Name: UpFirewallPlanned},
		{Name: UpFirewallApplied},
		{Name: UpCommitted},
		{Name: DownRemovingSaved},
		{Name: DownFirewallRemoved},
		{Name: DownLinkRemoved, PerAttachment: true},
		{Name: DownIPAMReleased, PerAttachment: true},
		{Name: DownBridgeRemoved, PerAttachment: true, BridgeOnly: true},
		{Name: DownRecordDeleted},
	}
}

// Names returns the name of every failpoint.
func Names() []string {
	points := Points()
	names := make([]string, len(points))
	for i, p := range points {
		names[i] = p.Name
	}
	return names
}

// Action is the effect of an armed failpoint when it is reached.
type Action string

// Actions.
const (
	// Kill sends SIGKILL to the process itself.
	Kill Action = "kill"
	// Fail makes Inject return an error naming the point.
	Fail Action = "fail"
)

// Spec is a parsed KVMNET_FAILPOINT value.
type Spec struct {
	// Name is the failpoint name.
	Name string
	// Index is the attachment index the point is limited to, or -1 for any.
	Index int
	// Action is the effect when the point is reached.
	Action Action
}

// String formats s as a KVMNET_FAILPOINT value.
func (s Spec) String() string {
	if s.Index >= 0 {
		return fmt.Sprintf("%s@%d:%s", s.Name, s.Index, s.Action)
	}
	return fmt.Sprintf("%s:%s", s.Name, s.Action)
}

// Parse parses a KVMNET_FAILPOINT value.
func Parse(value string) (Spec, error) {
	target, action, ok := strings.Cut(value, ":")
	if !ok {
		return Spec{}, fmt.Errorf("invalid %s %q: use NAME[@INDEX]:kill or NAME[@INDEX]:fail", EnvVar, value)
	}
	spec := Spec{Name: target, Index: -1, Action: Action(action)}
	if name, index, ok := strings.Cut(target, "@"); ok {
		n, err := strconv.Atoi(index)
		if err != nil || n < 0 {
			return Spec{}, fmt.Errorf("invalid %s %q: attachment index %q is not a number >= 0", EnvVar, value, index)
		}
		spec.Name, spec.Index = name, n
	}
	known := false
	for _, p := range Points() {
		known = known || p.Name == spec.Name
	}
	if !known {
		return Spec{}, fmt.Errorf("invalid %s %q: unknown failpoint %q; known: %s", EnvVar, value, spec.Name, strings.Join(Names(), ", "))
	}
	if spec.Action != Kill && spec.Action != Fail {
		return Spec{}, fmt.Errorf("invalid %s %q: unknown action %q; use kill or fail", EnvVar, value, action)
	}
	return spec, nil
}

// Error is returned by Inject for a failpoint armed with the fail action.
type Error struct {
	// Point is the failpoint name.
	Point string
}

func (e *Error) Error() string { return "failpoint " + e.Point + ": injected failure" }
