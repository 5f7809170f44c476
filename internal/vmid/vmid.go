// Package vmid validates VM ids and derives the names and MAC addresses of
// the objects kvmnet creates for a VM. Every derived value depends on the
// whole id, so ids that share a prefix never share a device name.
package vmid

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLen is the maximum length of a VM id in bytes. It keeps the temporary
// state file ".<id>.<random>.tmp" within the 255-byte file-name limit.
const MaxLen = 200

// MaxTagLen is the maximum length of a Tag: nftables keeps comments of at
// most 128 bytes.
const MaxTagLen = 128

// Tag returns the VM's owner tag for places limited to MaxTagLen bytes: the
// id itself when it fits, else its first bytes joined by '~' to a hash of
// the whole. No VM id contains '~', so no VM id equals another VM's tag.
func Tag(id string) string {
	if len(id) <= MaxTagLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return id[:MaxTagLen-17] + "~" + fmt.Sprintf("%x", sum[:8])
}

// TapPrefix starts the name of every link kvmnet creates for a VM, so that
// residue checks and gc can find them.
const TapPrefix = "kvm"

// MaxLinkName is the kernel's limit on a link name (IFNAMSIZ - 1).
const MaxLinkName = 15

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Validate checks that id matches [A-Za-z0-9][A-Za-z0-9_.-]* and is at most
// MaxLen bytes long. The id names state files, so nothing else is allowed.
func Validate(id string) error {
	if id == "" {
		return fmt.Errorf("invalid VM id: empty; %s", idRule())
	}
	if len(id) > MaxLen {
		return fmt.Errorf("invalid VM id %q...: %d bytes; %s", id[:32], len(id), idRule())
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || (i > 0 && (c == '_' || c == '.' || c == '-')) {
			continue
		}
		return fmt.Errorf("invalid VM id %s: %s at byte %d; %s", strconv.Quote(id), describeChar(id[i:]), i, idRule())
	}
	return nil
}

// idRule returns the VM id syntax in the words of every Validate error.
func idRule() string {
	return fmt.Sprintf("use letters, digits, '_', '.' and '-', starting with a letter or digit, at most %d bytes", MaxLen)
}

// describeChar names the character that starts s: a whole UTF-8 character
// such as 'é', or the single byte as '\xc3' when s does not start with
// valid UTF-8.
func describeChar(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte '\\x%02x'", s[0])
	}
	return "character " + strconv.QuoteRune(r)
}

func digest(id string, index int) [sha256.Size]byte {
	return sha256.Sum256([]byte(id + "\x00" + strconv.Itoa(index)))
}

// LinkName returns the host link name of attachment index of VM id:
// TapPrefix followed by 12 base32 characters of a hash, 15 bytes in all.
func LinkName(id string, index int) string {
	sum := digest(id, index)
	return TapPrefix + lowerBase32.EncodeToString(sum[:])[:MaxLinkName-len(TapPrefix)]
}

// MAC returns a stable, locally administered unicast MAC address for
// attachment index of VM id.
func MAC(id string, index int) net.HardwareAddr {
	sum := digest(id, index)
	mac := net.HardwareAddr(sum[8:14])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// IsLinkName reports whether name has the shape of a name from LinkName.
func IsLinkName(name string) bool {
	if len(name) != MaxLinkName || !strings.HasPrefix(name, TapPrefix) {
		return false
	}
	_, err := lowerBase32.DecodeString(name[len(TapPrefix):] + "aaaa")
	return err == nil
}
