package flannel

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DefaultSubnetFile is the subnet.env path that flanneld writes by default.
const DefaultSubnetFile = "/run/flannel/subnet.env"

// ErrInvalidConfig is wrapped by every error that ParseConfig returns.
var ErrInvalidConfig = errors.New("invalid flannel network config")

// Config is a parsed CNI network config of type flannel. Keys of the config
// other than the ones below are ignored.
type Config struct {
	// Name is the network name, required. The rendered config has the same name.
	Name string
	// CNIVersion is the config's cniVersion, optional. The rendered config
	// carries it over.
	CNIVersion string
	// SubnetFile is the absolute path of flanneld's subnet.env, from
	// "subnetFile". Default DefaultSubnetFile.
	SubnetFile string
	// DataDir is the absolute path from "dataDir", optional. The rendered
	// config uses it as the host-local IPAM data directory.
	DataDir string
	// Delegate holds the keys of the "delegate" object with their JSON values,
	// after type checks. A delegate "mtu" or "vlan" is rewritten as a plain
	// integer (1400.0 becomes 1400). Nil when the config has no delegate.
	Delegate map[string]json.RawMessage
	// IPAM holds the keys of the top-level "ipam" object, optional: its
	// "routes" are added to the flannel routes and its other keys are passed
	// to the IPAM plugin. Nil when the config has no ipam.
	IPAM map[string]json.RawMessage
	// RuntimeConfig is the "runtimeConfig" object, optional. The rendered
	// config gets it unless the delegate sets its own.
	RuntimeConfig json.RawMessage
}

// jsonKind is the JSON type of a value, as named in error messages.
type jsonKind string

const (
	kindString  jsonKind = "a string"
	kindBool    jsonKind = "a boolean"
	kindNumber  jsonKind = "a number"
	kindObject  jsonKind = "an object"
	kindArray   jsonKind = "an array"
	kindNull    jsonKind = "null"
	kindInvalid jsonKind = "invalid JSON"
)

// delegateFieldKinds returns the JSON types of the delegate keys that this
// package checks. Other keys are passed through unchecked. The keys are those
// of the bridge plugin's config that other main plugins share.
func delegateFieldKinds() map[string]jsonKind {
	return map[string]jsonKind{
		"type":             kindString,
		"cniVersion":       kindString,
		"bridge":           kindString,
		"ipMasq":           kindBool,
		"isGateway":        kindBool,
		"isDefaultGateway": kindBool,
		"hairpinMode":      kindBool,
		"forceAddress":     kindBool,
		"promiscMode":      kindBool,
		"mtu":              kindNumber,
		"vlan":             kindNumber,
		"runtimeConfig":    kindObject,
	}
}

// ParseConfig parses and checks a CNI network config of type flannel.
//
// Every key it reads must have the JSON type the CNI flannel plugin documents,
// and null counts as a wrong type. The delegate must not set "name" or
// "ipam", because the rendered config takes them from the network. Delegate
// values of the keys listed by delegateFieldKind are type-checked, and a
// delegate "mtu" must be an integer from MinMTU to MaxMTU. Every error wraps
// ErrInvalidConfig and names the field.
func ParseConfig(conf []byte) (Config, error) {
	cfg, err := parseConfig(conf)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return cfg, nil
}

func parseConfig(conf []byte) (Config, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(conf, &top); err != nil {
		return Config{}, fmt.Errorf("config is not a JSON object: %w", err)
	}
	if top == nil {
		return Config{}, errors.New("config is not a JSON object: got null")
	}

	known := []string{"name", "type", "cniVersion", "subnetFile", "dataDir", "delegate", "ipam", "runtimeConfig"}
	if err := checkKeySpelling(top, "", known); err != nil {
		return Config{}, err
	}
	cfg := Config{SubnetFile: DefaultSubnetFile}
	if err := parseTopLevel(top, &cfg); err != nil {
		return Config{}, err
	}

	if raw, ok := top["delegate"]; ok {
		delegate, err := parseDelegate(raw, cfg.CNIVersion)
		if err != nil {
			return Config{}, err
		}
		cfg.Delegate = delegate
	}

	if raw, ok := top["ipam"]; ok {
		ipam, err := parseIPAM(raw)
		if err != nil {
			return Config{}, err
		}
		cfg.IPAM = ipam
	}
	return cfg, nil
}

// parseTopLevel reads the scalar top-level keys and runtimeConfig into cfg.
func parseTopLevel(top map[string]json.RawMessage, cfg *Config) error {
	typ, _, err := stringField(top, "", "type")
	if err != nil {
		return err
	}
	if typ != "flannel" {
		return fmt.Errorf(`field "type": expected "flannel", got %s`, quoteCut(typ))
	}

	var found bool
	if cfg.Name, found, err = stringField(top, "", "name"); err != nil {
		return err
	}
	if !found || cfg.Name == "" {
		return errors.New(`field "name": missing or empty`)
	}
	if cfg.CNIVersion, _, err = stringField(top, "", "cniVersion"); err != nil {
		return err
	}

	subnetFile, found, err := stringField(top, "", "subnetFile")
	if err != nil {
		return err
	}
	if found {
		if !filepath.IsAbs(subnetFile) {
			return fmt.Errorf(`field "subnetFile": %s is not an absolute path`, quoteCut(subnetFile))
		}
		cfg.SubnetFile = subnetFile
	}
	if cfg.DataDir, found, err = stringField(top, "", "dataDir"); err != nil {
		return err
	}
	if found && !filepath.IsAbs(cfg.DataDir) {
		return fmt.Errorf(`field "dataDir": %s is not an absolute path`, quoteCut(cfg.DataDir))
	}

	if raw, ok := top["runtimeConfig"]; ok {
		if err := checkKind(raw, "runtimeConfig", kindObject); err != nil {
			return err
		}
		cfg.RuntimeConfig = raw
	}
	return nil
}

func parseDelegate(raw json.RawMessage, cniVersion string) (map[string]json.RawMessage, error) {
	delegate, err := objectValue(raw, "delegate")
	if err != nil {
		return nil, err
	}
	kinds := delegateFieldKinds()
	known := append(slices.Collect(maps.Keys(kinds)), "name", "ipam")
	if err := checkKeySpelling(delegate, "delegate.", known); err != nil {
		return nil, err
	}
	if _, ok := delegate["name"]; ok {
		return nil, errors.New(`field "delegate.name": must not be set, the rendered config takes the flannel network's name`)
	}
	if _, ok := delegate["ipam"]; ok {
		return nil, errors.New(`field "delegate.ipam": must not be set, flannel builds it from subnet.env ` +
			`(set extra IPAM keys such as routes in the top-level "ipam")`)
	}
	for _, key := range slices.Sorted(maps.Keys(delegate)) {
		kind, ok := kinds[key]
		if !ok {
			continue
		}
		if err := checkKind(delegate[key], "delegate."+key, kind); err != nil {
			return nil, err
		}
	}

	if err := checkDelegateStrings(delegate, cniVersion); err != nil {
		return nil, err
	}
	if err := normalizeInteger(delegate, "mtu", MinMTU, MaxMTU); err != nil {
		return nil, err
	}
	// 0 means untagged, and 4094 is the largest 802.1Q VLAN id.
	if err := normalizeInteger(delegate, "vlan", 0, 4094); err != nil {
		return nil, err
	}
	return delegate, nil
}

// checkDelegateStrings checks the values of the delegate's string keys.
func checkDelegateStrings(delegate map[string]json.RawMessage, cniVersion string) error {
	typ, found, err := stringField(delegate, "delegate.", "type")
	if err != nil {
		return err
	}
	if found && typ == "" {
		return errors.New(`field "delegate.type": must not be empty`)
	}

	version, found, err := stringField(delegate, "delegate.", "cniVersion")
	if err != nil {
		return err
	}
	if found && cniVersion != "" && version != cniVersion {
		return fmt.Errorf(`field "delegate.cniVersion": %s differs from the network's cniVersion %s`, quoteCut(version), quoteCut(cniVersion))
	}
	return nil
}

// normalizeInteger checks that the number under key is an integer from min
// to max and rewrites it in plain integer form. A missing key is left alone.
func normalizeInteger(delegate map[string]json.RawMessage, key string, minValue, maxValue int) error {
	raw, ok := delegate[key]
	if !ok {
		return nil
	}

	field := "delegate." + key
	text := string(raw)
	value, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return fmt.Errorf("field %q: invalid number %s: %w", field, quoteJSON(raw), errors.Unwrap(err))
	}
	// Without an exponent the check is exact on the text. With one, it is
	// done on the float64 value, so a fraction below float64 precision, as in
	// 1400.0000000000000001e0, passes as 1400.
	if !isIntegerText(text) || math.Trunc(value) != value {
		return fmt.Errorf("field %q: %s is not an integer", field, quoteJSON(raw))
	}
	if value < float64(minValue) || value > float64(maxValue) {
		return fmt.Errorf("field %q: %s is out of range: expected %d to %d", field, quoteJSON(raw), minValue, maxValue)
	}

	delegate[key] = json.RawMessage(strconv.Itoa(int(value)))
	return nil
}

// isIntegerText reports whether a JSON number without an exponent has no
// fraction or a fraction of zeros only. It returns true for any number with
// an exponent, which the caller checks on its value.
func isIntegerText(text string) bool {
	if strings.ContainsAny(text, "eE") {
		return true
	}
	_, fraction, found := strings.Cut(text, ".")
	return !found || strings.Trim(fraction, "0") == ""
}

// parseIPAM checks the top-level ipam object.
func parseIPAM(raw json.RawMessage) (map[string]json.RawMessage, error) {
	ipam, err := objectValue(raw, "ipam")
	if err != nil {
		return nil, err
	}
	known := []string{"type", "routes", "dataDir", "ranges", "subnet", "rangeStart", "rangeEnd", "gateway"}
	if err := checkKeySpelling(ipam, "ipam.", known); err != nil {
		return nil, err
	}
	// flannel takes the address ranges from subnet.env, so the keys that
	// describe ranges would conflict with it or be silently ignored.
	for _, key := range []string{"ranges", "subnet", "rangeStart", "rangeEnd", "gateway"} {
		if _, ok := ipam[key]; ok {
			return nil, fmt.Errorf("field %q: must not be set, flannel takes the address ranges from subnet.env", "ipam."+key)
		}
	}

	typ, found, err := stringField(ipam, "ipam.", "type")
	if err != nil {
		return nil, err
	}
	if found && typ == "" {
		return nil, errors.New(`field "ipam.type": must not be empty`)
	}
	if _, _, err := stringField(ipam, "ipam.", "dataDir"); err != nil {
		return nil, err
	}

	if raw, ok := ipam["routes"]; ok {
		if err := checkRoutes(raw); err != nil {
			return nil, err
		}
	}
	return ipam, nil
}

// checkRoutes checks that raw is an array of CNI route objects, each with a
// "dst" CIDR and an optional "gw" address of the same family.
func checkRoutes(raw json.RawMessage) error {
	var routes []json.RawMessage
	if err := checkKind(raw, "ipam.routes", kindArray); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &routes); err != nil {
		return fmt.Errorf(`field "ipam.routes": %w`, err)
	}

	for i, route := range routes {
		if err := checkRoute(route, fmt.Sprintf("ipam.routes[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// checkRoute checks one route object; field is its path for error messages.
func checkRoute(raw json.RawMessage, field string) error {
	route, err := objectValue(raw, field)
	if err != nil {
		return err
	}
	if err := checkKeySpelling(route, field+".", []string{"dst", "gw"}); err != nil {
		return err
	}

	dst, found, err := stringField(route, field+".", "dst")
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("field %q: missing", field+".dst")
	}
	prefix, err := netip.ParsePrefix(dst)
	if err != nil {
		return fmt.Errorf("field %q: invalid CIDR %s: %w", field+".dst", quoteCut(dst), err)
	}

	gw, found, err := stringField(route, field+".", "gw")
	if err != nil {
		return err
	}
	if !found {
		return nil
	}
	addr, err := netip.ParseAddr(gw)
	if err != nil {
		return fmt.Errorf("field %q: invalid IP address %s: %w", field+".gw", quoteCut(gw), err)
	}
	if addr.Unmap().Is4() != prefix.Addr().Unmap().Is4() {
		return fmt.Errorf("field %q: gateway %s and destination %s are of different address families", field+".gw", addr, prefix)
	}
	return nil
}

// checkKeySpelling rejects a key that differs from a known key only in case.
// encoding/json, which CNI plugins use to decode their config, matches keys
// case-insensitively, so "MTU" would reach the plugin as "mtu" and bypass the
// checks of this package, or conflict with the value it renders.
func checkKeySpelling(object map[string]json.RawMessage, prefix string, known []string) error {
	for _, key := range slices.Sorted(maps.Keys(object)) {
		for _, want := range known {
			if key != want && strings.EqualFold(key, want) {
				return fmt.Errorf("field %s: invalid key, spell it %q because CNI plugins match keys case-insensitively",
					quoteCut(prefix+key), want)
			}
		}
	}
	return nil
}

// stringField returns the string under key and whether the key is present.
// prefix is prepended to key in error messages.
func stringField(object map[string]json.RawMessage, prefix, key string) (string, bool, error) {
	raw, ok := object[key]
	if !ok {
		return "", false, nil
	}
	if err := checkKind(raw, prefix+key, kindString); err != nil {
		return "", true, err
	}

	var value string
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", true, fmt.Errorf("field %q: %w", prefix+key, err)
	}
	return value, true, nil
}

// objectValue decodes a JSON object whose keys are checked one by one later.
func objectValue(raw json.RawMessage, field string) (map[string]json.RawMessage, error) {
	if err := checkKind(raw, field, kindObject); err != nil {
		return nil, err
	}

	var object map[string]json.RawMessage
	if err := json.Unmarshal(raw, &object); err != nil {
		return nil, fmt.Errorf("field %q: %w", field, err)
	}
	return object, nil
}

// checkKind returns an error naming field unless raw is of the wanted kind.
func checkKind(raw json.RawMessage, field string, want jsonKind) error {
	got := kindOf(raw)
	switch got {
	case want:
		return nil
	case kindNull:
		return fmt.Errorf("field %q: must be %s, got null", field, want)
	}
	return fmt.Errorf("field %q: must be %s, got %s %s", field, want, got, quoteJSON(raw))
}

// kindOf returns the JSON type of a value that encoding/json has already
// checked, from its first byte.
func kindOf(raw json.RawMessage) jsonKind {
	if len(raw) == 0 {
		return kindInvalid
	}
	switch raw[0] {
	case '"':
		return kindString
	case 't', 'f':
		return kindBool
	case 'n':
		return kindNull
	case '{':
		return kindObject
	case '[':
		return kindArray
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return kindNumber
	}
	return kindInvalid
}

// quoteJSON returns a JSON value for an error message, cut to maxQuotedText bytes.
func quoteJSON(raw json.RawMessage) string {
	if len(raw) <= maxQuotedText {
		return string(raw)
	}
	return string(raw[:maxQuotedText]) + "..."
}
