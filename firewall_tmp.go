package kvmnet

import "github.com/kvmnet/kvmnet/internal/state"

func (m *Manager) applyFirewall(rec *state.Record, atts []resolved, res *Result) error { return nil }
func (m *Manager) removeFirewall(rec *state.Record) error                            { return nil }
