package failpoint

import (
	"errors"
	"testing"
)

func TestInject(t *testing.T) {
	t.Setenv(EnvVar, "up.link-up@1:fail")
	if err := Inject(UpLinkUp, 0); err != nil {
		t.Errorf("Inject at another attachment = %v, want nil", err)
	}
	if err := Inject(UpCommitted, -1); err != nil {
		t.Errorf("Inject at another point = %v, want nil", err)
	}
	err := Inject(UpLinkUp, 1)
	if !Enabled {
		if err != nil {
			t.Errorf("Inject without the failpoints tag = %v, want nil", err)
		}
		return
	}
	var fpErr *Error
	if !errors.As(err, &fpErr) || fpErr.Point != UpLinkUp {
		t.Errorf("Inject at the armed point = %v, want a failpoint error for %s", err, UpLinkUp)
	}
}
