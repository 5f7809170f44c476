package state

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzRecordRoundTrip checks that every record Decode accepts survives
// Save and Load unchanged, so that a record written by one step of up is
// read back whole by the next step or by down.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add([]byte(`{"version":1,"vm":"vm-1","phase":"creating","attachments":[{"index":0,"network":"default","hostDevice":"kvmabcdefghijkl","ipamStarted":true,"config":{"name":"default"}}]}`))
	f.Add([]byte(`{"version":1,"vm":"a.b_c-d","phase":"up","firewallPlanned":true,"firewall":{"vm":{"id":"a.b_c-d"}},"result":{"interfaces":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Decode(data, "fuzz.json", "")
		if err != nil {
			return
		}
		want, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("encode an accepted record: %v", err)
		}
		store, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Save(rec); err != nil {
			t.Fatalf("save an accepted record: %v", err)
		}
		loaded, err := store.Load(rec.VM)
		if err != nil {
			t.Fatalf("load a saved record: %v", err)
		}
		got, err := json.Marshal(loaded)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("record changed in a save and load:\nbefore %s\nafter  %s", want, got)
		}
	})
}
