package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

// The audit log: every accepted change and every decision of the office,
// append-only and hash-chained. Entry n carries the hash of entry n−1
// (Prev) and its own hash over its content and Prev, so changing,
// removing or reordering an entry breaks the chain at that entry.
//
// There are no transactions (FerretDB has none): entries are numbered by
// a sequence whose uniqueness the store enforces (the entry's _id); a
// writer reads the last entry, numbers its entries after it and inserts
// them; a writer that lost the race gets a duplicate and starts again
// from the new last entry. An entry also has a unique Key (the change's
// record and revision, the decision's op id), so an entry logged twice
// (a push retried after a crash) is logged once.

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	Seq int64  `json:"seq"`
	Key string `json:"key"`
	// At is the server's clock.
	At time.Time `json:"at"`
	// Who: the person (user id), name, the role acted in, and where
	// from: a device id or a console session id.
	Actor     string `json:"actor"`
	ActorName string `json:"actor_name,omitempty"`
	Role      string `json:"role,omitempty"`
	Device    string `json:"device,omitempty"`
	Session   string `json:"session,omitempty"`
	// What: "change" (an accepted change) or "hazard.<action>" (a
	// decision), of which record, at which revision, with the reason or
	// a summary.
	Action   string `json:"action"`
	RecordID string `json:"record_id,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Rev      int64  `json:"rev,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Prev     string `json:"prev"`
	Hash     string `json:"hash"`
}

// AuditStore keeps the audit log.
type AuditStore interface {
	// LastAudit returns the entry with the highest Seq; ok is false when
	// the log is empty.
	LastAudit(ctx context.Context) (e AuditEntry, ok bool, err error)
	// InsertAudit inserts entries in order and returns how many it
	// inserted; it stops at the first whose Seq or Key is taken, with
	// ECONFLICT.
	InsertAudit(ctx context.Context, entries []AuditEntry) (int, error)
	// AuditKeys returns which of the keys are logged.
	AuditKeys(ctx context.Context, keys []string) (map[string]bool, error)
	// AuditRange returns up to limit entries with Seq > after, by Seq.
	AuditRange(ctx context.Context, after int64, limit int) ([]AuditEntry, error)
	// AuditOf returns the entries of a record, by Seq.
	AuditOf(ctx context.Context, recordID string) ([]AuditEntry, error)
	// AuditBy returns the last limit entries of a person, newest first.
	AuditBy(ctx context.Context, actor string, limit int) ([]AuditEntry, error)

	// AddPending stores entries not chained yet (an entry whose Key is
	// pending already is kept as it is); Pending returns up to limit of
	// them, oldest first (At, then Key); DeletePending removes them.
	AddPending(ctx context.Context, entries []AuditEntry) error
	Pending(ctx context.Context, limit int) ([]AuditEntry, error)
	DeletePending(ctx context.Context, keys []string) error
}

// Audit appends to and verifies the audit log.
type Audit struct {
	Store AuditStore
	Now   func() time.Time
	// Deferred puts entries in the pending collection for Run to chain,
	// off the push path (fieldsyncd); without it Append chains at once.
	Deferred bool
}

// hashOf returns the hex sha256 of the entry's content and Prev.
func hashOf(e AuditEntry) string {
	e.Hash = ""
	e.At = e.At.UTC()
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Append logs entries. With Deferred, they are put in the pending
// collection (one insert, no contention: a push never waits for the
// chain) and Run links them into the chain within a second; otherwise
// they are chained at once.
func (a *Audit) Append(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	now := a.Now().UTC().Truncate(time.Millisecond)
	for i := range entries {
		if entries[i].At.IsZero() {
			entries[i].At = now
		}
	}
	if !a.Deferred {
		return a.chain(ctx, entries)
	}
	return a.Store.AddPending(ctx, entries)
}

// Run links pending entries into the chain every period until ctx is
// done. Several processes may run it: they race for entry numbers, and
// the loser retries.
func (a *Audit) Run(ctx context.Context, period time.Duration, logger *slog.Logger) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := a.ChainPending(ctx, 500)
			if err != nil && ctx.Err() == nil {
				logger.Warn("audit: chaining pending entries", "error", err.Error())
			}
			if err != nil || n < 500 {
				break
			}
		}
	}
}

// ChainPending links up to limit pending entries (oldest first) into the
// chain, removes them from the pending collection and returns how many
// it took.
func (a *Audit) ChainPending(ctx context.Context, limit int) (int, error) {
	pending, err := a.Store.Pending(ctx, limit)
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	if err := a.chain(ctx, slices.Clone(pending)); err != nil {
		return 0, err
	}
	keys := make([]string, len(pending))
	for i, e := range pending {
		keys[i] = e.Key
	}
	return len(pending), a.Store.DeletePending(ctx, keys)
}

// chain appends entries to the chain (their Seq, Prev and Hash are set
// here), skipping those whose Key is already chained.
func (a *Audit) chain(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	for attempt := 0; attempt < 64 && len(entries) > 0; attempt++ {
		have, err := a.Store.AuditKeys(ctx, keys)
		if err != nil {
			return err
		}
		var todo []AuditEntry
		for _, e := range entries {
			if !have[e.Key] {
				todo = append(todo, e)
			}
		}
		entries = todo
		if len(entries) == 0 {
			return nil
		}
		last, _, err := a.Store.LastAudit(ctx)
		if err != nil {
			return err
		}
		now := a.Now().UTC().Truncate(time.Millisecond)
		prev, seq := last.Hash, last.Seq
		for i := range entries {
			seq++
			entries[i].Seq, entries[i].Prev = seq, prev
			if entries[i].At.IsZero() {
				entries[i].At = now
			}
			entries[i].At = entries[i].At.UTC().Truncate(time.Millisecond)
			entries[i].Hash = hashOf(entries[i])
			prev = entries[i].Hash
		}
		n, err := a.Store.InsertAudit(ctx, entries)
		entries = entries[n:]
		if err != nil && syncproto.ErrorCode(err) != syncproto.ECONFLICT {
			return err
		}
	}
	if len(entries) > 0 {
		return syncproto.Errorf(syncproto.EUNAVAILABLE, "The audit log is busy; try again.")
	}
	return nil
}

// AuditReport is the outcome of Verify.
type AuditReport struct {
	OK      bool   `json:"ok"`
	Checked int64  `json:"checked"`
	Broken  int64  `json:"broken_seq,omitempty"` // the first broken or missing link
	Reason  string `json:"reason,omitempty"`
	Last    string `json:"last_hash,omitempty"`
}

// Verify walks the chain from the first entry and names the first entry
// that is missing, altered or out of place.
func (a *Audit) Verify(ctx context.Context) (AuditReport, error) {
	var rep AuditReport
	prev, want := "", int64(1)
	for {
		page, err := a.Store.AuditRange(ctx, want-1, 1000)
		if err != nil {
			return rep, err
		}
		if len(page) == 0 {
			rep.OK, rep.Last = true, prev
			return rep, nil
		}
		for _, e := range page {
			switch {
			case e.Seq != want:
				rep.Broken, rep.Reason = want, fmt.Sprintf("entry %d is missing (the next entry is %d)", want, e.Seq)
			case e.Prev != prev:
				rep.Broken, rep.Reason = e.Seq, fmt.Sprintf("entry %d does not carry the hash of entry %d", e.Seq, e.Seq-1)
			case hashOf(e) != e.Hash:
				rep.Broken, rep.Reason = e.Seq, fmt.Sprintf("entry %d was altered: its content does not match its hash", e.Seq)
			}
			if rep.Broken != 0 {
				return rep, nil
			}
			rep.Checked++
			prev, want = e.Hash, want+1
		}
	}
}

// ChangeEntries returns the audit entries of record states a push wrote,
// attributed to the principal in ctx.
func ChangeEntries(ctx context.Context, states []*syncproto.Record) []AuditEntry {
	p, _ := PrincipalFrom(ctx)
	out := make([]AuditEntry, 0, len(states))
	for _, r := range states {
		e := AuditEntry{
			Key:   fmt.Sprintf("change/%s/%d", r.ID, r.Rev),
			Actor: p.UserID, ActorName: p.Name, Session: p.Session,
			Action: "change", RecordID: r.ID.String(), Kind: r.Kind, Scope: ScopeOf(r), Rev: r.Rev,
		}
		if p.IsDevice() {
			e.Device = p.DeviceID.String()
		}
		if p.Automation {
			e.Device = "admin-token"
		}
		out = append(out, e)
	}
	return out
}

// AuditOfPerson returns what a person did (newest first, at most limit
// entries) in the scopes p may see: decisions and accepted changes.
func (d *Desk) AuditOfPerson(ctx context.Context, p Principal, actor string, limit int) ([]AuditEntry, error) {
	if actingRole(p) == "" {
		return nil, syncproto.Errorf(syncproto.EFORBIDDEN, "只有督导室人员可以查看人员的审计记录。Only the office sees a person's audit trail.")
	}
	entries, err := d.Audit.Store.AuditBy(ctx, actor, limit)
	if err != nil {
		return nil, err
	}
	out := entries[:0]
	for _, e := range entries {
		if e.Scope == RefScope || e.Scope == "" {
			out = append(out, e)
			continue
		}
		ok, err := d.Access.CanSeeSchool(ctx, p, e.Scope)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}
