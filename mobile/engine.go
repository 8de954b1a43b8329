package mobile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Validator checks a record's values against its form before an edit
// enters the outbox, so that the phone refuses what the server would
// refuse. It returns nil, or an EINVALID *syncproto.Error whose Fields
// map field keys to messages for the person filling in the form.
type Validator interface {
	Validate(formID string, formVersion int, values map[string]json.RawMessage) error
}

// ValidatorFunc adapts a function to Validator.
type ValidatorFunc func(formID string, formVersion int, values map[string]json.RawMessage) error

// Validate implements Validator.
func (f ValidatorFunc) Validate(formID string, formVersion int, values map[string]json.RawMessage) error {
	return f(formID, formVersion, values)
}

// PublishedValidator is a Validator that can also check values against a
// form version the office published and the phone has pulled (a form
// record, see forms.PublishedRecordID). The engine uses it for records of
// forms that are not built in, when the phone holds their definition.
type PublishedValidator interface {
	Validator
	ValidatePublished(def *forms.Definition, values map[string]json.RawMessage) error
}

// Options configure an Engine. The zero value syncs over HTTP with the
// server and token saved at enrollment, validates nothing, and reads the
// real clock.
type Options struct {
	// Transport reaches the server. Nil means HTTPTransport to the server
	// URL saved by Enroll or SetServer, with the saved device token.
	Transport Transport
	// HTTPClient is used by the default transport; nil means a client
	// with a 60 s timeout.
	HTTPClient *http.Client
	// Validator checks values of records that name a form. Nil accepts
	// everything (the server still validates).
	Validator Validator
	// Now is the device clock. Nil means time.Now.
	Now func() time.Time
	// NewID makes the ids the engine needs: the device id of a new file,
	// and record, item, op and batch ids. Nil means random UUIDv7s. A
	// simulation sets a source drawn from its seed (and its clock), so
	// that a run replays from the seed alone.
	NewID func() uuid.UUID
	// NoSync skips fsync on commit. Only for simulated phones (load tests):
	// a power cut can then lose committed edits.
	NoSync bool
	// Logger receives debug lines about sync decisions. Nil discards them.
	Logger *slog.Logger
	// Wrap, when set, wraps every transport the engine uses, the default
	// HTTP one included: for metrics or fault injection.
	Wrap func(Transport) Transport
	// PhoneNumber and Email, when the app knows them, fill the
	// phonenumber and email metadata of forms (forms.Field.Meta).
	PhoneNumber string
	Email       string
}

// Engine is one phone's local database and sync state. Its methods are
// safe for concurrent use; Sync calls are serialised.
type Engine struct {
	db     *bolt.DB
	opts   Options
	now    func() time.Time
	log    *slog.Logger
	device uuid.UUID

	syncMu sync.Mutex // one Sync at a time

	mu        sync.Mutex // guards the cached settings below
	token     string
	serverURL string
	author    string
}

// ErrOffline is returned by Sync while the user has switched sync off.
var ErrOffline = errors.New("mobile: offline: sync is switched off")

// Open opens (or creates) the phone database at path. A new file gets a
// new device id, which is also the replica id of every version this phone
// writes. Only one Engine may hold a file at a time; a second Open of the
// same file waits a second and fails.
func Open(path string, opts Options) (*Engine, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: opts.NoSync, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("mobile: open %s: %w", path, err)
	}
	e := &Engine{db: db, opts: opts, now: opts.Now, log: opts.Logger}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		id, err := uuid.Parse(getMeta(tx, metaDeviceID))
		if err != nil {
			id, err = e.newID()
			if err != nil {
				return err
			}
			if err := putMeta(tx, metaDeviceID, id.String()); err != nil {
				return err
			}
		}
		e.device = id
		e.token, e.serverURL, e.author = getMeta(tx, metaToken), getMeta(tx, metaServerURL), getMeta(tx, metaAuthor)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mobile: open %s: %w", path, err)
	}
	return e, nil
}

// newID returns a new id from Options.NewID, or a random UUIDv7.
func (e *Engine) newID() (uuid.UUID, error) {
	if e.opts.NewID != nil {
		return e.opts.NewID(), nil
	}
	return uuid.NewV7()
}

// Close closes the database. Pending edits and queued photos stay in the
// file for the next Open.
func (e *Engine) Close() error { return e.db.Close() }

// Path returns the database file's path.
func (e *Engine) Path() string { return e.db.Path() }

// DeviceID returns the phone's device (replica) id.
func (e *Engine) DeviceID() uuid.UUID {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.device
}

func (e *Engine) settings() (token, serverURL, author string, device uuid.UUID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.token, e.serverURL, e.author, e.device
}

func (e *Engine) transport() Transport {
	if e.opts.Transport != nil {
		return e.wrap(e.opts.Transport)
	}
	_, url, _, _ := e.settings()
	return e.wrap(&HTTPTransport{BaseURL: url, Client: e.opts.HTTPClient, GzipRequests: true, Token: func() string {
		tok, _, _, _ := e.settings()
		return tok
	}})
}

func (e *Engine) wrap(t Transport) Transport {
	if e.opts.Wrap != nil {
		return e.opts.Wrap(t)
	}
	return t
}

// Enrollment is what the phone knows about its enrollment.
type Enrollment struct {
	ServerURL   string
	DeviceID    uuid.UUID
	InspectorID string
	UserID      string
	Name        string
}

// Enroll exchanges a one-time code from the office for a device token and
// saves the server URL, the token and the inspector. A phone enrolling
// again (after its token was revoked, say) first takes a new device id,
// because the server refuses a device id it has enrolled before.
func (e *Engine) Enroll(ctx context.Context, serverURL, code, deviceName string) (Enrollment, error) {
	tok, _, _, dev := e.settings()
	if tok != "" {
		nd, err := e.newID()
		if err != nil {
			return Enrollment{}, err
		}
		dev = nd
	}
	var t Transport = e.opts.Transport
	if t == nil {
		t = &HTTPTransport{BaseURL: serverURL, Client: e.opts.HTTPClient}
	}
	t = e.wrap(t)
	resp, err := t.Enroll(ctx, EnrollRequest{Code: code, DeviceID: dev, DeviceName: deviceName})
	if err != nil {
		return Enrollment{}, fmt.Errorf("mobile: enroll: %w", err)
	}
	err = e.db.Update(func(tx *bolt.Tx) error {
		for k, v := range map[string]string{
			metaDeviceID: dev.String(), metaToken: resp.Token, metaServerURL: serverURL,
			metaAuthor: resp.UserID, metaInspector: resp.InspectorID, metaName: resp.Name, metaDeviceName: deviceName,
		} {
			if err := putMeta(tx, k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("mobile: enroll: save: %w", err)
	}
	e.mu.Lock()
	e.device, e.token, e.serverURL, e.author = dev, resp.Token, serverURL, resp.UserID
	e.mu.Unlock()
	return Enrollment{ServerURL: serverURL, DeviceID: dev, InspectorID: resp.InspectorID, UserID: resp.UserID, Name: resp.Name}, nil
}

// SetServer saves a server URL, a device token and the author of future
// edits without enrolling: for phones whose token was made elsewhere (the
// load command, tests).
func (e *Engine) SetServer(serverURL, token, author string) error {
	err := e.db.Update(func(tx *bolt.Tx) error {
		if err := putMeta(tx, metaServerURL, serverURL); err != nil {
			return err
		}
		if err := putMeta(tx, metaToken, token); err != nil {
			return err
		}
		return putMeta(tx, metaAuthor, author)
	})
	if err != nil {
		return fmt.Errorf("mobile: set server: %w", err)
	}
	e.mu.Lock()
	e.token, e.serverURL, e.author = token, serverURL, author
	e.mu.Unlock()
	return nil
}

// SetOffline switches sync off (true) or on. While off, Sync returns
// ErrOffline at once and the phone keeps working locally.
func (e *Engine) SetOffline(off bool) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		v := ""
		if off {
			v = "true"
		}
		return putMeta(tx, metaOffline, v)
	})
}

// Draft is an edit of a record through its form: the fields to write.
type Draft struct {
	// ID is the record to edit; zero creates a new record with a new
	// UUIDv7. A non-zero id of a record this phone does not hold creates
	// the record under that id (it must be a UUIDv7).
	ID uuid.UUID
	// Kind, SchoolID, FormID and FormVersion make the header of a new
	// record. For an existing record they may be left empty; if given
	// they must match.
	Kind        string
	SchoolID    string
	FormID      string
	FormVersion int
	// Values are the fields to write, as JSON. Fields not named keep
	// their values; a field whose value equals its current winner is not
	// written again.
	Values map[string]json.RawMessage
}

// Save validates and writes a draft: the new record state and its outbox
// entry in one transaction. The whole record (current values with the
// draft's on top) is validated against its form; an invalid draft returns
// an EINVALID *syncproto.Error with field messages and writes nothing.
// Saving a record whose earlier changes were rejected re-submits them with
// this edit.
func (e *Engine) Save(d Draft) (*syncproto.Record, error) {
	var out *syncproto.Record
	err := e.db.Update(func(tx *bolt.Tx) error {
		var err error
		out, err = e.save(tx, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (e *Engine) save(tx *bolt.Tx, d Draft) (*syncproto.Record, error) {
	values := make(map[string]json.RawMessage, len(d.Values))
	for k, v := range d.Values {
		c, err := syncproto.CanonicalJSON(v)
		if err != nil {
			return nil, syncproto.FieldError("The values are not valid JSON.", map[string]string{k: "is not valid JSON"})
		}
		values[k] = c
	}
	var r *syncproto.Record
	if d.ID != uuid.Nil {
		var err error
		if r, err = getRecord(tx, bucketRecords, d.ID); err != nil {
			return nil, err
		}
	}
	isNew := r == nil
	if isNew {
		if d.Kind == "" {
			if d.ID != uuid.Nil {
				return nil, syncproto.Errorf(syncproto.ENOTFOUND, "No record %s on this phone.", d.ID)
			}
			return nil, syncproto.FieldError("A new record needs a kind.", map[string]string{"kind": "is required"})
		}
		id := d.ID
		if id == uuid.Nil {
			var err error
			if id, err = e.newID(); err != nil {
				return nil, err
			}
		}
		_, _, author, _ := e.settings()
		r = &syncproto.Record{ID: id, Kind: d.Kind, SchoolID: d.SchoolID, FormID: d.FormID, FormVersion: d.FormVersion,
			CreatedAt: e.now().UTC().Truncate(time.Millisecond), CreatedBy: author}
		if err := r.Header().Validate(); err != nil {
			return nil, err
		}
	} else if (d.Kind != "" && d.Kind != r.Kind) || (d.SchoolID != "" && d.SchoolID != r.SchoolID) ||
		(d.FormID != "" && d.FormID != r.FormID) || (d.FormVersion != 0 && d.FormVersion != r.FormVersion) {
		return nil, syncproto.Errorf(syncproto.EINVALID, "Record %s is a %s of form %s v%d; its header cannot change.", r.ID, r.Kind, r.FormID, r.FormVersion)
	}
	changed := make([]string, 0, len(values))
	for k, v := range values {
		if cur := r.Value(k); cur == nil || string(cur) != string(v) {
			changed = append(changed, k)
		}
	}
	if len(changed) > 0 || isNew {
		meta, err := e.fillMeta(tx, r, values, isNew)
		if err != nil {
			return nil, err
		}
		for k, v := range meta {
			values[k] = v
			if !slices.Contains(changed, k) {
				changed = append(changed, k)
			}
		}
	}
	slices.Sort(changed)
	if e.opts.Validator != nil && r.FormID != "" {
		all := make(map[string]json.RawMessage, len(r.Fields)+len(values))
		for k := range r.Fields {
			all[k] = r.Value(k)
		}
		maps.Copy(all, values)
		if err := e.opts.Validator.Validate(r.FormID, r.FormVersion, all); err != nil {
			return nil, err
		}
		if pv, ok := e.opts.Validator.(PublishedValidator); ok {
			if _, builtin := forms.BuiltinByID(r.FormID, r.FormVersion); !builtin {
				if def := definition(tx, r.FormID, r.FormVersion); def != nil {
					if err := pv.ValidatePublished(def, all); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	if len(changed) == 0 && !isNew {
		return r, nil // nothing to write
	}
	return e.write(tx, r, func(cur *syncproto.Record, w *syncproto.Writer) (*syncproto.Record, *syncproto.Record) {
		delta := cur.Header()
		for _, k := range changed {
			var d *syncproto.Record
			cur, d = syncproto.Set(cur, k, values[k], w)
			delta, _ = syncproto.Merge(delta, d)
		}
		return cur, delta
	})
}

// write runs a local edit: it gives edit a Writer with the phone's clock,
// stores the new record, the clock and the outbox entry.
func (e *Engine) write(tx *bolt.Tx, r *syncproto.Record, edit func(*syncproto.Record, *syncproto.Writer) (next, delta *syncproto.Record)) (*syncproto.Record, error) {
	_, _, author, dev := e.settings()
	w := &syncproto.Writer{Replica: dev, Author: author, Clock: getClock(tx, dev), Now: e.now()}
	base := r.Version()
	next, delta := edit(r, w)
	if err := putLocal(tx, next); err != nil {
		return nil, err
	}
	if err := putClock(tx, w.Clock); err != nil {
		return nil, err
	}
	if err := e.enqueue(tx, delta, base); err != nil {
		return nil, err
	}
	return next, nil
}

// enqueue adds a delta to the outbox: folded into the record's newest
// entry that was never sent, or as a new entry with a new op id. Changes
// of the record that the server rejected go with it (the user edited the
// record, which is how a rejection is answered) and leave the problem list.
func (e *Engine) enqueue(tx *bolt.Tx, delta *syncproto.Record, base syncproto.Vector) error {
	rej := tx.Bucket(bucketRejected)
	var drop [][]byte
	err := rej.ForEach(func(k, v []byte) error {
		var p rejection
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		if p.Change.Record != nil && p.Change.Record.ID == delta.ID {
			m, err := syncproto.Merge(delta, p.Change.Record)
			if err != nil {
				return err
			}
			delta, base = m, base.Meet(p.Change.Base)
			drop = append(drop, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := rej.Delete(k); err != nil {
			return err
		}
	}
	out, pend := tx.Bucket(bucketOutbox), tx.Bucket(bucketPending)
	if key := pend.Get(delta.ID[:]); key != nil {
		var ent outboxEntry
		ok, err := getJSON(out, key, &ent)
		if err != nil {
			return err
		}
		if ok && ent.Batch == uuid.Nil {
			m, err := syncproto.Merge(ent.Delta, delta)
			if err != nil {
				return err
			}
			ent.Delta, ent.Base = m, ent.Base.Meet(base)
			return putJSON(out, key, ent)
		}
	}
	op, err := e.newID()
	if err != nil {
		return err
	}
	seq, err := out.NextSequence()
	if err != nil {
		return err
	}
	key := seqKey(seq)
	if err := putJSON(out, key, outboxEntry{OpID: op, RecordID: delta.ID, Delta: delta, Base: base, CreatedAt: e.now().UTC()}); err != nil {
		return err
	}
	return pend.Put(delta.ID[:], key)
}

// Append adds an item to one of a record's append-only collections (a
// hazard's events, a visit's photos) and returns the item id. data is the
// item as JSON; items never change once written.
func (e *Engine) Append(recordID uuid.UUID, collection string, data json.RawMessage) (string, error) {
	c, err := syncproto.CanonicalJSON(data)
	if err != nil {
		return "", syncproto.FieldError("The item is not valid JSON.", map[string]string{collection: "is not valid JSON"})
	}
	itemID, err := e.newID()
	if err != nil {
		return "", err
	}
	err = e.edit(recordID, func(cur *syncproto.Record, w *syncproto.Writer) (*syncproto.Record, *syncproto.Record) {
		return syncproto.Append(cur, collection, itemID.String(), c, w)
	})
	if err != nil {
		return "", err
	}
	return itemID.String(), nil
}

// Delete deletes a record (a tombstone that has seen every version; an
// edit made concurrently elsewhere keeps the record alive, see
// syncproto.Record.IsDeleted).
func (e *Engine) Delete(recordID uuid.UUID) error {
	return e.edit(recordID, syncproto.Delete)
}

// edit runs a local edit of a record this phone holds (ENOTFOUND
// otherwise) in one transaction; see write.
func (e *Engine) edit(recordID uuid.UUID, f func(*syncproto.Record, *syncproto.Writer) (next, delta *syncproto.Record)) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, bucketRecords, recordID)
		if err != nil {
			return err
		}
		if r == nil {
			return syncproto.Errorf(syncproto.ENOTFOUND, "No record %s on this phone.", recordID)
		}
		_, err = e.write(tx, r, f)
		return err
	})
}

// Record returns the local copy of a record, or ENOTFOUND.
func (e *Engine) Record(id uuid.UUID) (*syncproto.Record, error) {
	var r *syncproto.Record
	err := e.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getRecord(tx, bucketRecords, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, syncproto.Errorf(syncproto.ENOTFOUND, "No record %s on this phone.", id)
	}
	return r, nil
}

// Filter selects records in Records. Empty members match everything.
type Filter struct {
	Kind     string
	SchoolID string
	// Deleted includes tombstones.
	Deleted bool
}

// Records returns the local records that match f, oldest first (record
// ids are UUIDv7, so id order is creation order).
func (e *Engine) Records(f Filter) ([]*syncproto.Record, error) {
	var out []*syncproto.Record
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			var r syncproto.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("mobile: records: %w", err)
			}
			if (f.Kind == "" || r.Kind == f.Kind) && (f.SchoolID == "" || r.SchoolID == f.SchoolID) && (f.Deleted || !r.IsDeleted()) {
				out = append(out, &r)
			}
			return nil
		})
	})
	return out, err
}

// Status is a summary of the phone's state for a status screen.
type Status struct {
	DeviceID    string      `json:"device_id"`
	ServerURL   string      `json:"server_url,omitempty"`
	InspectorID string      `json:"inspector_id,omitempty"`
	UserID      string      `json:"user_id,omitempty"`
	Name        string      `json:"name,omitempty"`
	Enrolled    bool        `json:"enrolled"`
	Offline     bool        `json:"offline"`
	Records     int         `json:"records"`
	Outbox      int         `json:"outbox"`    // changes waiting to be pushed
	InFlight    int         `json:"in_flight"` // of which sent, answer not yet stored
	Photos      int         `json:"photos"`    // photos not yet on the server
	PhotoBytes  int64       `json:"photo_bytes"`
	Rejected    int         `json:"rejected"`
	Conflicts   int         `json:"conflicts"`
	Clock       string      `json:"clock,omitempty"`
	LastSync    *SyncReport `json:"last_sync,omitempty"`
}

// Status returns the phone's state.
func (e *Engine) Status() (Status, error) {
	var s Status
	err := e.db.View(func(tx *bolt.Tx) error {
		s = Status{DeviceID: getMeta(tx, metaDeviceID), ServerURL: getMeta(tx, metaServerURL), InspectorID: getMeta(tx, metaInspector),
			UserID: getMeta(tx, metaAuthor), Name: getMeta(tx, metaName), Enrolled: getMeta(tx, metaToken) != "",
			Offline: getMeta(tx, metaOffline) == "true", Clock: getMeta(tx, metaClock),
			Records:   tx.Bucket(bucketRecords).Stats().KeyN,
			Rejected:  tx.Bucket(bucketRejected).Stats().KeyN,
			Conflicts: tx.Bucket(bucketConflicts).Stats().KeyN,
		}
		err := tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var ent outboxEntry
			if err := json.Unmarshal(v, &ent); err != nil {
				return err
			}
			s.Outbox++
			if ent.Batch != uuid.Nil {
				s.InFlight++
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketPhotos).ForEach(func(k, v []byte) error {
			var p photoEntry
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			if p.State != PhotoDone {
				s.Photos++
				s.PhotoBytes += p.Size - p.Received
			}
			return nil
		})
		if err != nil {
			return err
		}
		if v := getMeta(tx, metaLastSync); v != "" {
			var r SyncReport
			if json.Unmarshal([]byte(v), &r) == nil {
				s.LastSync = &r
			}
		}
		return nil
	})
	return s, err
}
