package vmid

import (
	"strings"
	"testing"
)

func TestValidateIDs(t *testing.T) {
	good := []string{"a", "web-1", "vm_2.test", strings.Repeat("x", MaxLen), "0abc"}
	for _, id := range good {
		if err := Validate(id); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", id, err)
		}
	}
	bad := map[string]string{
		"":                       "empty",
		"../../etc/x":            "'.'",
		"a/b":                    "'/'",
		"-lead":                  "'-'",
		".hidden":                "'.'",
		"tab\tid":                `'\t'`,
		"nl\nid":                 `'\n'`,
		"sp ace":                 "' '",
		strings.Repeat("y", 201): "201 bytes",
		"ümlaut":                 "at byte 0",
	}
	for id, fragment := range bad {
		err := Validate(id)
		if err == nil {
			t.Errorf("Validate(%q) = nil, want an error", id)
			continue
		}
		if !strings.Contains(err.Error(), fragment) {
			t.Errorf("Validate(%q) = %q, want it to mention %q", id, err, fragment)
		}
	}
}

func TestLinkNameFitsAndDiffers(t *testing.T) {
	long := strings.Repeat("v", 200)
	names := map[string]bool{}
	for _, id := range []string{"web-server-1", "web-server-2", long, long + "x", "a"} {
		for index := 0; index < 3; index++ {
			name := LinkName(id, index)
			if len(name) != MaxLinkName {
				t.Errorf("LinkName(%q, %d) = %q: %d bytes, want %d", id, index, name, len(name), MaxLinkName)
			}
			if !strings.HasPrefix(name, TapPrefix) {
				t.Errorf("LinkName(%q, %d) = %q: missing prefix %q", id, index, name, TapPrefix)
			}
			if !IsLinkName(name) {
				t.Errorf("IsLinkName(%q) = false", name)
			}
			if names[name] {
				t.Errorf("LinkName(%q, %d) = %q repeats an earlier name", id, index, name)
			}
			names[name] = true
		}
	}
	if LinkName("web-server-1", 0) != LinkName("web-server-1", 0) {
		t.Error("LinkName is not stable")
	}
	if IsLinkName("eth0") || IsLinkName("kvm1234567890!!") {
		t.Error("IsLinkName accepted a foreign name")
	}
}

func TestMACIsLocalUnicastAndStable(t *testing.T) {
	for index := 0; index < 4; index++ {
		mac := MAC("vm-1", index)
		if len(mac) != 6 {
			t.Fatalf("MAC length %d, want 6", len(mac))
		}
		if mac[0]&0x02 == 0 {
			t.Errorf("MAC %s is not locally administered", mac)
		}
		if mac[0]&0x01 != 0 {
			t.Errorf("MAC %s is multicast", mac)
		}
		if MAC("vm-1", index).String() != mac.String() {
			t.Errorf("MAC(vm-1, %d) is not stable", index)
		}
	}
	if MAC("vm-1", 0).String() == MAC("vm-1", 1).String() {
		t.Error("MACs of two attachments are equal")
	}
}

func TestTagFitsComment(t *testing.T) {
	short := "vm-1"
	if Tag(short) != short {
		t.Errorf("Tag(%q) = %q, want the id itself", short, Tag(short))
	}
	long := strings.Repeat("a", 150)
	tag := Tag(long)
	if len(tag) != MaxTagLen {
		t.Errorf("Tag of a 150-byte id has %d bytes, want %d", len(tag), MaxTagLen)
	}
	if err := Validate(tag); err == nil {
		t.Errorf("Tag %q is a valid VM id, so a VM could take it over", tag)
	}
	if Tag(long+"b") == tag {
		t.Error("two long ids with one prefix share a tag")
	}
}

func TestValidateNamesNonASCII(t *testing.T) {
	cases := []struct {
		name, id, want string
	}{
		{"two-byte character", "é", `invalid VM id "é": character 'é' at byte 0;`},
		{"character after ascii", "vm-ü", `invalid VM id "vm-ü": character 'ü' at byte 3;`},
		{"invalid utf-8", "vm\xc3", `invalid VM id "vm\xc3": byte '\xc3' at byte 2;`},
		{"lone continuation byte", "\xa9x", `invalid VM id "\xa9x": byte '\xa9' at byte 0;`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.id)
			if err == nil {
				t.Fatalf("Validate(%q) = nil, want an error", tc.id)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Validate(%q) = %q, want it to start with %q", tc.id, err, tc.want)
			}
		})
	}
}

func TestValidateStatesOneRule(t *testing.T) {
	rule := "use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 200 bytes"
	for _, id := range []string{"", "-x", strings.Repeat("z", MaxLen+1)} {
		err := Validate(id)
		if err == nil {
			t.Fatalf("Validate(%q) = nil, want an error", id)
		}
		if !strings.HasSuffix(err.Error(), rule) {
			t.Errorf("Validate(%q) = %q, want it to end with %q", id, err, rule)
		}
	}
}
