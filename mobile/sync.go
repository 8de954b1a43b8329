package mobile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Sync phases reported to a progress callback.
const (
	PhasePush   = "push"
	PhasePull   = "pull"
	PhasePhotos = "photos"
)

// Progress is one progress report of Sync: in phase, Done of Total units
// (changes for push, records for pull, bytes for photos). Total is 0 when
// unknown (a pull does not know how many records remain).
type Progress struct {
	Phase string
	Done  int64
	Total int64
}

// SyncReport counts what a Sync did.
type SyncReport struct {
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished,omitzero"`
	Batches    int       `json:"batches"`
	Pushed     int       `json:"pushed"`
	Applied    int       `json:"applied"`
	Merged     int       `json:"merged"`
	Conflicts  int       `json:"conflicts"`
	Duplicates int       `json:"duplicates"`
	Rejected   int       `json:"rejected"`
	Requeued   int       `json:"requeued"` // sent again under a new op id
	Pulled     int       `json:"pulled"`
	Restarts   int       `json:"restarts"` // pulls restarted from an empty cursor (ESTALE)
	Skipped    int       `json:"skipped"`  // pulled records that could not be merged
	Photos     int       `json:"photos"`   // photos now complete on the server
	PhotoBytes int64     `json:"photo_bytes"`
	Error      string    `json:"error,omitempty"`
}

// DefaultLimits are used for whatever the server's Info leaves zero.
var DefaultLimits = syncproto.Limits{MaxChanges: 500, MaxBytes: 8 << 20, MaxPull: 500, ChunkBytes: 256 << 10, MaxBlobSize: 32 << 20}

// Sync pushes the outbox in batches, applies the outcomes, pulls until
// caught up, and uploads queued photos with resume. progress, when not
// nil, is called as work advances.
//
// Sync is safe to call again after any error and after the process was
// killed at any point: a batch sent without a stored answer is resent
// unchanged; the cursor moves in the same transaction as the records it
// covers; photo uploads resume from what the server holds. It returns
// ErrOffline when sync is switched off.
func (e *Engine) Sync(ctx context.Context, progress func(Progress)) (rep SyncReport, err error) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if progress == nil {
		progress = func(Progress) {}
	}
	rep.Started = e.now().UTC()
	defer func() {
		rep.Finished = e.now().UTC()
		if err != nil {
			rep.Error = err.Error()
		}
		b, _ := json.Marshal(rep)
		// The report is for display; a failure to save it is not the sync's.
		_ = e.db.Update(func(tx *bolt.Tx) error { return putMeta(tx, metaLastSync, string(b)) })
	}()
	var offline bool
	e.db.View(func(tx *bolt.Tx) error { offline = getMeta(tx, metaOffline) == "true"; return nil })
	if offline {
		return rep, ErrOffline
	}
	t := e.transport()
	info, err := t.Info(ctx)
	if err != nil {
		return rep, fmt.Errorf("mobile: sync: info: %w", err)
	}
	lim := withDefaults(info.Limits)
	for round := 0; round < 3; round++ {
		if err := e.push(ctx, t, lim, &rep, progress); err != nil {
			return rep, err
		}
		requeued, err := e.pull(ctx, t, lim, &rep, progress)
		if err != nil {
			return rep, err
		}
		if !requeued {
			break
		}
		// Records the server lost (it was restored) were queued again:
		// push them and pull once more.
	}
	if err := e.uploadPhotos(ctx, t, lim, &rep, progress); err != nil {
		return rep, err
	}
	return rep, nil
}

func withDefaults(l syncproto.Limits) syncproto.Limits {
	d := DefaultLimits
	if l.MaxChanges > 0 {
		d.MaxChanges = l.MaxChanges
	}
	if l.MaxBytes > 0 {
		d.MaxBytes = l.MaxBytes
	}
	if l.MaxPull > 0 {
		d.MaxPull = l.MaxPull
	}
	if l.ChunkBytes > 0 {
		d.ChunkBytes = l.ChunkBytes
	}
	if l.MaxBlobSize > 0 {
		d.MaxBlobSize = l.MaxBlobSize
	}
	return d
}

// batch is a push batch: entries in outbox order and their keys.
type batch struct {
	id      uuid.UUID
	keys    [][]byte
	entries []outboxEntry
}

// nextBatch returns the batch to push: the oldest batch in flight if a
// previous sync was interrupted after sending it (resent unchanged), or
// else up to max entries never sent, now marked in flight under a new
// random batch id. It returns an empty batch when the outbox is empty.
func (e *Engine) nextBatch(max int, maxBytes int64) (batch, error) {
	var b batch
	err := e.db.Update(func(tx *bolt.Tx) error {
		out := tx.Bucket(bucketOutbox)
		c := out.Cursor()
		// An interrupted batch goes first, alone and unchanged.
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var ent outboxEntry
			if err := json.Unmarshal(v, &ent); err != nil {
				return err
			}
			if ent.Batch == uuid.Nil || (b.id != uuid.Nil && ent.Batch != b.id) {
				continue
			}
			b.id = ent.Batch
			b.keys = append(b.keys, bytes.Clone(k))
			b.entries = append(b.entries, ent)
		}
		if b.id != uuid.Nil {
			return nil
		}
		id, err := e.newID()
		if err != nil {
			return err
		}
		var size int64
		pend := tx.Bucket(bucketPending)
		for k, v := c.First(); k != nil && len(b.entries) < max; k, v = c.Next() {
			var ent outboxEntry
			if err := json.Unmarshal(v, &ent); err != nil {
				return err
			}
			size += int64(len(v))
			if len(b.entries) > 0 && size > maxBytes*9/10 {
				break
			}
			ent.Batch = id
			if err := putJSON(out, k, ent); err != nil {
				return err
			}
			if bytes.Equal(pend.Get(ent.RecordID[:]), k) {
				if err := pend.Delete(ent.RecordID[:]); err != nil {
					return err
				}
			}
			b.keys = append(b.keys, bytes.Clone(k))
			b.entries = append(b.entries, ent)
		}
		if len(b.entries) > 0 {
			b.id = id
		}
		return nil
	})
	return b, err
}

func (e *Engine) outboxLen() int {
	n := 0
	e.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketOutbox).Stats().KeyN; return nil })
	return n
}

// push drains the outbox batch by batch.
func (e *Engine) push(ctx context.Context, t Transport, lim syncproto.Limits, rep *SyncReport, progress func(Progress)) error {
	total := int64(e.outboxLen())
	var done int64
	max := lim.MaxChanges
	for range 10000 {
		b, err := e.nextBatch(max, lim.MaxBytes)
		if err != nil {
			return fmt.Errorf("mobile: sync: push: %w", err)
		}
		if len(b.entries) == 0 {
			return nil
		}
		req := &syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: e.DeviceID(), BatchID: b.id}
		for _, ent := range b.entries {
			req.Changes = append(req.Changes, ent.change())
		}
		progress(Progress{Phase: PhasePush, Done: done, Total: max64(total, done+int64(len(b.entries)))})
		resp, err := t.Push(ctx, req)
		if syncproto.ErrorCode(err) == syncproto.ETOOLARGE {
			// Nothing was stored: take the batch apart and send smaller ones.
			if len(b.entries) == 1 {
				err = e.applyResults(b, []syncproto.Result{{OpID: b.entries[0].OpID, Status: syncproto.StatusRejected, Error: err.(*syncproto.Error)}}, rep)
			} else {
				max = max64i(1, len(b.entries)/2)
				err = e.release(b, rep)
			}
			if err != nil {
				return fmt.Errorf("mobile: sync: push: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("mobile: sync: push batch %s: %w", b.id, err)
		}
		if len(resp.Results) != len(b.entries) {
			return fmt.Errorf("mobile: sync: push batch %s: %d results for %d changes", b.id, len(resp.Results), len(b.entries))
		}
		for i, r := range resp.Results {
			if r.OpID != b.entries[i].OpID {
				return fmt.Errorf("mobile: sync: push batch %s: result %d is for op %s, want %s", b.id, i, r.OpID, b.entries[i].OpID)
			}
		}
		if err := e.applyResults(b, resp.Results, rep); err != nil {
			return fmt.Errorf("mobile: sync: push: %w", err)
		}
		rep.Batches++
		rep.Pushed += len(b.entries)
		done += int64(len(b.entries))
		progress(Progress{Phase: PhasePush, Done: done, Total: max64(total, done)})
	}
	return fmt.Errorf("mobile: sync: push: the outbox does not drain")
}

func max64(a, b int64) int64 { return max(a, b) }
func max64i(a, b int) int    { return max(a, b) }

// release takes a batch the server did not process out of flight. Its
// entries get new op ids, so that folding later edits into them never
// sends one op id with two contents.
func (e *Engine) release(b batch, rep *SyncReport) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		for i, k := range b.keys {
			if err := e.requeue(tx, k, b.entries[i]); err != nil {
				return err
			}
			rep.Requeued++
		}
		return nil
	})
}

// requeue puts a sent entry back as never sent, under a new op id: folded
// into the record's pending entry if there is one.
func (e *Engine) requeue(tx *bolt.Tx, key []byte, ent outboxEntry) error {
	out, pend := tx.Bucket(bucketOutbox), tx.Bucket(bucketPending)
	if pk := pend.Get(ent.RecordID[:]); pk != nil {
		var p outboxEntry
		if ok, err := getJSON(out, pk, &p); err != nil {
			return err
		} else if ok && p.Batch == uuid.Nil {
			m, err := syncproto.Merge(p.Delta, ent.Delta)
			if err != nil {
				return err
			}
			p.Delta, p.Base = m, p.Base.Meet(ent.Base)
			if err := putJSON(out, pk, p); err != nil {
				return err
			}
			return out.Delete(key)
		}
	}
	op, err := e.newID()
	if err != nil {
		return err
	}
	ent.OpID, ent.Batch = op, uuid.Nil
	if err := putJSON(out, key, ent); err != nil {
		return err
	}
	// The pending entry must be the record's newest unsent one; an older
	// key is fine too because nothing newer for this record is unsent.
	return pend.Put(ent.RecordID[:], key)
}

// retryable reports whether a rejection code means "try again later"
// rather than "this change is wrong".
func retryable(code string) bool {
	switch code {
	case syncproto.EUNAVAILABLE, syncproto.EINTERNAL, syncproto.EOPREUSED:
		return true
	}
	return false
}

// applyResults stores the outcome of a batch in one transaction: accepted
// changes leave the outbox (the pull brings the server's state), rejected
// ones move to the problem list, and changes to send again are requeued
// under new op ids.
func (e *Engine) applyResults(b batch, results []syncproto.Result, rep *SyncReport) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		out := tx.Bucket(bucketOutbox)
		for i, r := range results {
			ent, key := b.entries[i], b.keys[i]
			switch r.Status {
			case syncproto.StatusApplied, syncproto.StatusMerged, syncproto.StatusConflict, syncproto.StatusDuplicate:
				switch r.Status {
				case syncproto.StatusApplied:
					rep.Applied++
				case syncproto.StatusMerged:
					rep.Merged++
				case syncproto.StatusConflict:
					rep.Conflicts++
				case syncproto.StatusDuplicate:
					rep.Duplicates++
				}
				if err := out.Delete(key); err != nil {
					return err
				}
			default: // rejected, or a status this build does not know
				perr := r.Error
				if perr == nil {
					perr = syncproto.Errorf(syncproto.EINVALID, "The server refused the change (status %q).", r.Status)
				}
				if retryable(perr.Code) {
					// EOPREUSED: the server knows this op id with other
					// content, which happens when the phone was restored
					// from a backup taken before a folded edit was sent.
					// Sending the delta again under a new op id is a
					// harmless join.
					e.log.Debug("change requeued", "op", ent.OpID, "record", ent.RecordID, "code", perr.Code)
					if err := e.requeue(tx, key, ent); err != nil {
						return err
					}
					rep.Requeued++
					continue
				}
				rep.Rejected++
				if err := putJSON(tx.Bucket(bucketRejected), ent.OpID[:], rejection{
					Change: ent.change(), RecordKind: ent.Delta.Kind, Error: perr, At: e.now().UTC(),
				}); err != nil {
					return err
				}
				if err := out.Delete(key); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// pull pulls pages until the server has nothing more. It reports whether
// records the server no longer had were queued to be pushed again.
func (e *Engine) pull(ctx context.Context, t Transport, lim syncproto.Limits, rep *SyncReport, progress func(Progress)) (bool, error) {
	var done int64
	restarts := 0
	for {
		var cursor string
		e.db.View(func(tx *bolt.Tx) error { cursor = getMeta(tx, metaCursor); return nil })
		resp, err := t.Pull(ctx, &syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cursor, Limit: lim.MaxPull})
		if syncproto.ErrorCode(err) == syncproto.ESTALE && restarts < 3 {
			restarts++
			rep.Restarts++
			if err := e.restartPull(); err != nil {
				return false, fmt.Errorf("mobile: sync: pull: %w", err)
			}
			continue
		}
		if err != nil {
			return false, fmt.Errorf("mobile: sync: pull: %w", err)
		}
		if err := e.storePage(resp, rep); err != nil {
			return false, fmt.Errorf("mobile: sync: pull: %w", err)
		}
		done += int64(len(resp.Records))
		progress(Progress{Phase: PhasePull, Done: done})
		if !resp.More {
			break
		}
		if resp.Cursor == cursor && len(resp.Records) == 0 {
			return false, fmt.Errorf("mobile: sync: pull: the server says more but its cursor does not move")
		}
	}
	return e.finishResync(rep)
}

// restartPull forgets the cursor and remembers which records the phone
// holds, to find those the server does not send again.
func (e *Engine) restartPull() error {
	return e.db.Update(func(tx *bolt.Tx) error {
		rs := tx.Bucket(bucketResync)
		err := tx.Bucket(bucketRecords).ForEach(func(k, _ []byte) error { return rs.Put(bytes.Clone(k), nil) })
		if err != nil {
			return err
		}
		return putMeta(tx, metaCursor, "")
	})
}

// storePage merges one page of pulled records into the server and local
// copies, advances the clock and stores the cursor, in one transaction.
func (e *Engine) storePage(resp *syncproto.PullResponse, rep *SyncReport) error {
	dev := e.DeviceID()
	return e.db.Update(func(tx *bolt.Tx) error {
		clock := getClock(tx, dev)
		rs := tx.Bucket(bucketResync)
		for _, in := range resp.Records {
			if in == nil {
				continue
			}
			srv, err := getRecord(tx, bucketServer, in.ID)
			if err != nil {
				return err
			}
			loc, err := getRecord(tx, bucketRecords, in.ID)
			if err != nil {
				return err
			}
			srv2, err1 := syncproto.Merge(srv, in)
			loc2, err2 := syncproto.Merge(loc, in)
			if err := errors.Join(err1, err2); err != nil {
				// Another record under the same id: a bug or an attack,
				// never a conflict. Keep ours and go on.
				e.log.Warn("pulled record not merged", "record", in.ID, "err", err)
				rep.Skipped++
				continue
			}
			if err := putJSON(tx.Bucket(bucketServer), in.ID[:], srv2); err != nil {
				return err
			}
			if err := putLocal(tx, loc2); err != nil {
				return err
			}
			if err := rs.Delete(in.ID[:]); err != nil {
				return err
			}
			clock = observeRecord(clock, in)
			rep.Pulled++
		}
		if err := putClock(tx, clock); err != nil {
			return err
		}
		return putMeta(tx, metaCursor, resp.Cursor)
	})
}

// finishResync handles the records a full pull after ESTALE did not bring
// back. A record this phone wrote to is queued again as a whole (the
// server lost it, perhaps restored from a backup, and the phone may hold
// the only copy of the inspector's work); any other is dropped, as the
// server no longer has it or no longer lets this phone see it.
func (e *Engine) finishResync(rep *SyncReport) (bool, error) {
	dev := e.DeviceID()
	queued := false
	err := e.db.Update(func(tx *bolt.Tx) error {
		rs := tx.Bucket(bucketResync)
		var ids []uuid.UUID
		rs.ForEach(func(k, _ []byte) error { ids = append(ids, uuid.UUID(k)); return nil })
		for _, id := range ids {
			if err := rs.Delete(id[:]); err != nil {
				return err
			}
			r, err := getRecord(tx, bucketRecords, id)
			if err != nil || r == nil {
				return err
			}
			if hasRejection(tx, id) {
				continue // not on the server because it was refused: the problem list has it
			}
			if !r.WrittenBy(dev) {
				if err := deleteLocal(tx, id); err != nil {
					return err
				}
				if err := tx.Bucket(bucketServer).Delete(id[:]); err != nil {
					return err
				}
				continue
			}
			if err := e.enqueue(tx, r, syncproto.Vector{}); err != nil {
				return err
			}
			rep.Requeued++
			queued = true
		}
		return nil
	})
	return queued, err
}

// hasRejection reports whether a change of the record was rejected.
func hasRejection(tx *bolt.Tx, id uuid.UUID) bool {
	found := false
	tx.Bucket(bucketRejected).ForEach(func(_, v []byte) error {
		var r rejection
		if json.Unmarshal(v, &r) == nil && r.Change.Record != nil && r.Change.Record.ID == id {
			found = true
		}
		return nil
	})
	return found
}
