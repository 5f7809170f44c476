package failpoint

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		value string
		want  Spec
	}{
		{"up.record-saved:kill", Spec{Name: UpRecordSaved, Index: -1, Action: Kill}},
		{"up.device-created@1:fail", Spec{Name: UpDeviceCreated, Index: 1, Action: Fail}},
		{"down.record-deleted:fail", Spec{Name: DownRecordDeleted, Index: -1, Action: Fail}},
	}
	for _, c := range cases {
		got, err := Parse(c.value)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.value, err)
			continue
		}
		if got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.value, got, c.want)
		}
		if got.String() != c.value {
			t.Errorf("Spec.String() = %q, want %q", got.String(), c.value)
		}
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]string{
		"up.record-saved":       "NAME[@INDEX]",
		"up.nothing:kill":       `unknown failpoint "up.nothing"`,
		"up.record-saved:panic": `unknown action "panic"`,
		"up.link-up@x:kill":     `attachment index "x"`,
		"up.link-up@-1:kill":    `attachment index "-1"`,
		":kill":                 `unknown failpoint ""`,
	}
	for value, fragment := range cases {
		_, err := Parse(value)
		if err == nil {
			t.Errorf("Parse(%q) = nil error", value)
			continue
		}
		if !strings.Contains(err.Error(), fragment) {
			t.Errorf("Parse(%q) error %q does not contain %q", value, err, fragment)
		}
	}
}

func TestNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range Names() {
		if seen[name] {
			t.Errorf("failpoint %s listed twice", name)
		}
		seen[name] = true
		if strings.ContainsAny(name, ":@") {
			t.Errorf("failpoint %s contains a separator of %s", name, EnvVar)
		}
	}
}
