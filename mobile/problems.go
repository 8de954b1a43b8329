package mobile

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Problem types.
const (
	ProblemRejected = "rejected" // the server refused a change; it is not retried by itself
	ProblemConflict = "conflict" // a record holds concurrent versions of a field
)

// Problem is something the inspector must look at: a change the server
// rejected (with the server's reason and field messages), or a record
// whose fields hold concurrent versions.
type Problem struct {
	// ID names the problem for RetryRejected and DiscardRejected: the op
	// id of a rejected change, "conflict:<record id>" for a conflict.
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	RecordID   string    `json:"record_id"`
	RecordKind string    `json:"record_kind"`
	SchoolID   string    `json:"school_id,omitempty"`
	Fields     []string  `json:"fields"` // fields of the rejected change, or fields in conflict
	At         time.Time `json:"at,omitzero"`
	// For rejections: the server's code, message and field messages.
	Code        string            `json:"code,omitempty"`
	Message     string            `json:"message,omitempty"`
	FieldErrors map[string]string `json:"field_errors,omitempty"`
	// For conflicts: the competing versions of each field, winner first.
	Versions map[string][]Version `json:"versions,omitempty"`
}

// Version is one of the concurrent values of a field in conflict.
type Version struct {
	Value  json.RawMessage `json:"value"`
	Author string          `json:"author,omitempty"`
	Device string          `json:"device"`
	At     time.Time       `json:"at"` // the writer's clock (HLC wall time)
}

// Problems lists rejected changes (oldest first) and then records in
// conflict.
func (e *Engine) Problems() ([]Problem, error) {
	var out []Problem
	err := e.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketRejected).ForEach(func(k, v []byte) error {
			var r rejection
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			p := Problem{ID: r.Change.OpID.String(), Type: ProblemRejected, RecordKind: r.RecordKind, At: r.At}
			if rec := r.Change.Record; rec != nil {
				p.RecordID, p.SchoolID = rec.ID.String(), rec.SchoolID
				for f := range rec.Fields {
					p.Fields = append(p.Fields, f)
				}
				for c := range rec.Items {
					p.Fields = append(p.Fields, c)
				}
				if len(rec.Deleted) > 0 {
					p.Fields = append(p.Fields, "deleted")
				}
				sort.Strings(p.Fields)
			}
			if r.Error != nil {
				p.Code, p.Message, p.FieldErrors = r.Error.Code, r.Error.Message, r.Error.Fields
			}
			out = append(out, p)
			return nil
		})
		if err != nil {
			return err
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
		return tx.Bucket(bucketConflicts).ForEach(func(k, _ []byte) error {
			r, err := getRecord(tx, bucketRecords, uuid.UUID(k))
			if err != nil || r == nil {
				return err
			}
			p := Problem{ID: "conflict:" + r.ID.String(), Type: ProblemConflict, RecordID: r.ID.String(), RecordKind: r.Kind,
				SchoolID: r.SchoolID, Fields: r.ConflictFields(), Versions: map[string][]Version{}}
			for _, f := range p.Fields {
				src := r.Fields[f]
				if f == "deleted" {
					src = r.Deleted
				}
				for _, v := range src {
					p.Versions[f] = append(p.Versions[f], Version{Value: v.Value, Author: v.Author, Device: v.HLC.Replica.String(), At: v.HLC.Time()})
				}
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// ResolveConflict settles a field in conflict by writing value, which the
// inspector chose having seen every version (one of them, or a new one).
// The superseded versions move to the record's conflict log, where a
// reviewer can still see them. For the "deleted" conflict, value true
// deletes the record again and false keeps it.
func (e *Engine) ResolveConflict(recordID uuid.UUID, field string, value json.RawMessage) error {
	c, err := syncproto.CanonicalJSON(value)
	if err != nil {
		return syncproto.FieldError("The value is not valid JSON.", map[string]string{field: "is not valid JSON"})
	}
	return e.edit(recordID, func(cur *syncproto.Record, w *syncproto.Writer) (*syncproto.Record, *syncproto.Record) {
		if field != "deleted" {
			return syncproto.Set(cur, field, c, w)
		}
		if string(c) == "true" {
			return syncproto.Delete(cur, w)
		}
		return syncproto.Keep(cur, w)
	})
}

func parseProblemID(id string) (uuid.UUID, error) {
	op, err := syncproto.ParseID(strings.TrimPrefix(id, "rejected:"))
	if err != nil {
		return uuid.Nil, syncproto.Errorf(syncproto.EINVALID, "%q is not the id of a rejected change.", id)
	}
	return op, nil
}

// RetryRejected sends a rejected change again with the record's other
// rejected changes, under a new op id, at the next Sync. Use it when the
// cause was outside the record (an assignment fixed by the office).
// Editing the record with Save does the same.
func (e *Engine) RetryRejected(problemID string) error {
	op, err := parseProblemID(problemID)
	if err != nil {
		return err
	}
	return e.db.Update(func(tx *bolt.Tx) error {
		var r rejection
		ok, err := getJSON(tx.Bucket(bucketRejected), op[:], &r)
		if err != nil {
			return err
		}
		if !ok {
			return syncproto.Errorf(syncproto.ENOTFOUND, "No rejected change %s.", problemID)
		}
		return e.enqueue(tx, r.Change.Record.Header(), r.Change.Base)
	})
}

// DiscardRejected gives up a rejected change: the local record is rebuilt
// from the server's copy and the changes still waiting to be sent, so it
// no longer shows what the server refused.
func (e *Engine) DiscardRejected(problemID string) error {
	op, err := parseProblemID(problemID)
	if err != nil {
		return err
	}
	return e.db.Update(func(tx *bolt.Tx) error {
		rej := tx.Bucket(bucketRejected)
		var r rejection
		ok, err := getJSON(rej, op[:], &r)
		if err != nil {
			return err
		}
		if !ok {
			return syncproto.Errorf(syncproto.ENOTFOUND, "No rejected change %s.", problemID)
		}
		if err := rej.Delete(op[:]); err != nil {
			return err
		}
		return rebuild(tx, r.Change.Record.ID)
	})
}

// rebuild recomputes a local record as the join of the server's copy, the
// outbox entries and the remaining rejected changes of the record.
func rebuild(tx *bolt.Tx, id uuid.UUID) error {
	r, err := getRecord(tx, bucketServer, id)
	if err != nil {
		return err
	}
	join := func(d *syncproto.Record) error {
		if d == nil || d.ID != id {
			return nil
		}
		m, err := syncproto.Merge(r, d)
		if err == nil {
			r = m
		}
		return err
	}
	err = tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		var ent outboxEntry
		if err := json.Unmarshal(v, &ent); err != nil {
			return err
		}
		return join(ent.Delta)
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketRejected).ForEach(func(k, v []byte) error {
		var rj rejection
		if err := json.Unmarshal(v, &rj); err != nil {
			return err
		}
		return join(rj.Change.Record)
	})
	if err != nil {
		return err
	}
	if r == nil {
		return deleteLocal(tx, id)
	}
	return putLocal(tx, r)
}
