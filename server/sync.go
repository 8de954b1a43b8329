package server

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// RefScope is the scope of reference data: records without a school
// (published forms, templates, office-wide notices). Every principal may
// pull it; only the office writes it.
const RefScope = "ref"

// ScopeOf returns the sync scope of a record: its school id, or RefScope
// for a record without a school. The school is part of a record's fixed
// header, so a record never changes scope.
func ScopeOf(r *syncproto.Record) string {
	if r.SchoolID == "" {
		return RefScope
	}
	return r.SchoolID
}

// ValidScope reports whether s names a scope: RefScope or a school id in
// canonical UUID form.
func ValidScope(s string) bool {
	if s == RefScope {
		return true
	}
	_, err := syncproto.ParseID(s)
	return err == nil
}

// Grant says which scopes a caller may write in a push. The devices
// service computes it from the principal's roles and assignments; the
// sync service only applies it, so it can be tested without auth.
type Grant struct {
	// Schools are the ids of the schools whose records the caller may
	// write (an inspector's assigned schools).
	Schools []string
	// AllSchools lets the caller write the records of any school (office
	// users).
	AllSchools bool
	// Reference lets the caller write records without a school (scope
	// RefScope): office users only.
	Reference bool
}

// Allows reports whether the grant covers a scope.
func (g Grant) Allows(scope string) bool {
	if scope == RefScope {
		return g.Reference
	}
	return g.AllSchools || slices.Contains(g.Schools, scope)
}

// RecordValidator checks a record against rules the sync protocol does not
// know, such as its form version (the forms package plugs in here). It is
// called with the full state a push would store (the stored record merged
// with the change), before anything is written; a non-nil error rejects
// the change, and its Fields reach the phone as field-level messages.
type RecordValidator interface {
	ValidateRecord(ctx context.Context, r *syncproto.Record) *syncproto.Error
}

// RecordValidatorFunc adapts a function to RecordValidator.
type RecordValidatorFunc func(ctx context.Context, r *syncproto.Record) *syncproto.Error

// ValidateRecord calls f.
func (f RecordValidatorFunc) ValidateRecord(ctx context.Context, r *syncproto.Record) *syncproto.Error {
	return f(ctx, r)
}

// Conflict statuses.
const (
	ConflictOpen     = "open"     // the field holds concurrent versions
	ConflictResolved = "resolved" // someone who had seen every version wrote the field again
)

// FlagClockSkew is set on a record when a change arrives with a clock
// stamp more than MaxClockSkew ahead of the server's clock.
const FlagClockSkew = "clock_skew"

// MaxClockSkew is how far ahead of the server's clock a device stamp may
// be before the record is flagged (docs/domain.md §6.7).
const MaxClockSkew = 10 * time.Minute

// Conflict is a field of a record that holds concurrent versions: two
// devices (or a device and the office) wrote it without having seen each
// other's value. syncproto keeps every version in the field; the conflict
// is the index a reviewer works from. It is resolved when someone who has
// seen all versions writes the field again (ResolveConflict, or a phone),
// and the losing versions then move to the record's conflict log.
type Conflict struct {
	// ID is "<record id>/<field>"; the field "deleted" stands for the
	// deletion register (a delete that clashed with an edit).
	ID       string    `json:"id"`
	RecordID uuid.UUID `json:"record_id"`
	Kind     string    `json:"kind"`
	// Scope is the record's school id, or RefScope.
	Scope  string `json:"scope"`
	Field  string `json:"field"`
	Status string `json:"status"`
	// Rev is the record revision at which Versions were recorded.
	Rev int64 `json:"rev"`
	// Versions are the field's concurrent versions, winner first.
	Versions   []syncproto.FieldVersion `json:"versions"`
	DetectedAt time.Time                `json:"detected_at"`
	UpdatedAt  time.Time                `json:"updated_at"`
	ResolvedAt *time.Time               `json:"resolved_at,omitempty"`
	// ResolvedBy is the user id of whoever wrote the resolving version.
	ResolvedBy string `json:"resolved_by,omitempty"`
}

// ConflictID returns the id of the conflict on a record's field.
func ConflictID(record uuid.UUID, field string) string { return record.String() + "/" + field }

// ConflictFilter selects conflicts. Zero fields match everything.
type ConflictFilter struct {
	Status   string    // ConflictOpen or ConflictResolved
	Scope    string    // a school id, or RefScope
	RecordID uuid.UUID // the conflicts of one record
	// Limit caps the result (0: DefaultConflictLimit).
	Limit int
}

// DefaultConflictLimit is the page size of Conflicts when the filter sets
// none, and MaxConflictLimit the largest it may set.
const (
	DefaultConflictLimit = 200
	MaxConflictLimit     = 1000
)

// RecordView is a record as a reviewer or a phone sees it one at a time:
// its state, the fields in conflict, whether it is deleted, and for a
// hazard or a follow-up task the state folded from its events at server
// time.
type RecordView struct {
	Record         *syncproto.Record      `json:"record"`
	ConflictFields []string               `json:"conflict_fields"`
	Deleted        bool                   `json:"deleted"`
	Hazard         *syncproto.HazardState `json:"hazard,omitempty"`
	Task           *syncproto.TaskState   `json:"task,omitempty"`
}

// NewRecordView derives the view of a record at server time now.
func NewRecordView(r *syncproto.Record, now time.Time) RecordView {
	v := RecordView{Record: r, ConflictFields: r.ConflictFields(), Deleted: r.IsDeleted()}
	if v.ConflictFields == nil {
		v.ConflictFields = []string{}
	}
	switch r.Kind {
	case "hazard":
		h := syncproto.FoldHazard(r, now)
		v.Hazard = &h
	case "follow_up_task":
		t := syncproto.FoldTask(r)
		v.Task = &t
	}
	return v
}

// StoredBatch is the answer to a push batch, kept so that the same batch
// sent again (after a timeout) gets the same answer without any write.
type StoredBatch struct {
	ID     uuid.UUID
	Device uuid.UUID
	// Digest identifies the batch's content (BatchDigest); the same batch
	// id with another digest is refused.
	Digest  string
	Results []syncproto.Result
	At      time.Time
}

// OpDigest is an op id with the digest of its change (syncproto.Change.Digest).
type OpDigest struct {
	OpID   uuid.UUID
	Digest string
}

// ClaimedOp is an op id recorded before: the digest of its change and the
// batch that recorded it.
type ClaimedOp struct {
	Digest string
	Batch  uuid.UUID
}

// ChangesPage is what SyncStore.Changes returns.
type ChangesPage struct {
	// Records are the logged states, in log order; one record may appear
	// more than once (at increasing revisions).
	Records []*syncproto.Record
	// Pos is the sequence number of the last log entry consumed (the
	// cursor position to continue from); it equals the after argument
	// when nothing was consumed.
	Pos int64
	// More reports that the page stopped at the limit or the byte budget.
	More bool
	// Bytes is the size of the records' states as stored (their JSON).
	Bytes int64
}

// CompactOptions say what Compact may forget.
type CompactOptions struct {
	// UpTo bounds the work to log entries with sequence numbers ≤ UpTo
	// (0: the whole log).
	UpTo int64
	// TombstonesBefore purges deleted records whose deleting entry was
	// logged before this time (zero: keep every tombstone).
	TombstonesBefore time.Time
}

// CompactResult reports what Compact did.
type CompactResult struct {
	Superseded int   `json:"superseded"` // entries of older revisions replaced by no-ops
	Tombstones int   `json:"tombstones"` // deleted records forgotten
	Horizon    int64 `json:"horizon"`    // the scope's horizon afterwards
}

// SyncStore is the storage the sync service needs: a change log per scope
// that doubles as the record store, the op and batch journal that makes
// pushes exactly-once, and the conflict index. It must work without
// multi-document transactions (FerretDB v1 has none); see server/mongo for
// how.
//
// Every method returns syncproto-coded errors for the outcomes it
// documents and wrapped storage errors (EINTERNAL) otherwise.
type SyncStore interface {
	// Epoch returns the change log's epoch, creating it on first use. A
	// cursor from another epoch cannot be continued.
	Epoch(ctx context.Context) (uuid.UUID, error)

	// Batch returns the stored answer to a push batch, or ENOTFOUND.
	Batch(ctx context.Context, id uuid.UUID) (StoredBatch, error)
	// SaveBatch stores the answer to a batch and returns the answer that
	// is stored: b, or, if an answer was already stored for the id, that
	// one (the first answer wins, so that two copies of one batch applied
	// at once both answer with it).
	SaveBatch(ctx context.Context, b StoredBatch) (StoredBatch, error)

	// ClaimOps records op ids with the digests of their changes, for
	// batch. Ops recorded before, by any batch, are not recorded again:
	// the returned map holds their stored digests (a digest differing
	// from the one passed means the op id was reused for other content)
	// and the batch that recorded them.
	ClaimOps(ctx context.Context, batch uuid.UUID, ops []OpDigest) (map[uuid.UUID]ClaimedOp, error)

	// Insert appends record states to the change log of their scopes
	// (ScopeOf), each at its Rev (≥ 1) and under a new sequence number.
	// It is the compare-and-set of the store: exists[i] reports that the
	// log already held state i's (ID, Rev), in which case nothing was
	// written for it (the record is not new, or another writer took that
	// revision first; read Current and try the next revision). The states
	// must have distinct (ID, Rev) pairs. A state written is visible to
	// Current at once and to Changes without a gap.
	Insert(ctx context.Context, states []*syncproto.Record) (exists []bool, err error)

	// Current returns the record's state at its highest revision in
	// scope, or ENOTFOUND.
	Current(ctx context.Context, scope string, id uuid.UUID) (*syncproto.Record, error)

	// Changes returns up to limit states logged in scope after position
	// after, in log order, whose JSON adds up to at most maxBytes (but at
	// least one state, whatever its size); its memory stays within about
	// maxBytes too. It never skips an entry: it stops before a sequence
	// number that was allocated but not (yet) written, and fills such a
	// hole with a no-op only once it is older than the store's lease (its
	// writer is presumed dead); a writer that comes back finds its slot
	// taken and writes elsewhere.
	Changes(ctx context.Context, scope string, after int64, limit int, maxBytes int64) (ChangesPage, error)

	// Horizons returns the horizon of each scope that has one: a cursor
	// position p with 0 < p < horizon may have missed the purge of a
	// tombstone and must start over.
	Horizons(ctx context.Context, scopes []string) (map[string]int64, error)

	// PutConflict creates or updates a conflict by ID, keeping the
	// DetectedAt of an existing one.
	PutConflict(ctx context.Context, c Conflict) error
	// Conflict returns one conflict, or ENOTFOUND.
	Conflict(ctx context.Context, id string) (Conflict, error)
	// Conflicts lists conflicts, most recently updated first.
	Conflicts(ctx context.Context, f ConflictFilter) ([]Conflict, error)

	// Compact forgets what no cursor needs any more in one scope: the
	// entries of superseded revisions (replaced by no-ops, so no sequence
	// number becomes free again) and, with TombstonesBefore, deleted
	// records entirely; then it raises the scope's horizon above the
	// purged tombstones, so cursors that may have missed them start over.
	Compact(ctx context.Context, scope string, opt CompactOptions) (CompactResult, error)
}

// PullPlanner is an optional interface of a SyncStore that can read
// what a pull needs to know of many scopes in one query instead of one
// per scope. Pull calls PlanPull once per call with the scopes it may
// read, and passes the context it returns to Changes: what Changes then
// takes from it must be as good as reading it at the time of PlanPull.
type PullPlanner interface {
	PlanPull(ctx context.Context, scopes []string) (context.Context, error)
}

// SyncService is what the HTTP layer calls for /v1/sync/* and the review
// APIs. Callers authenticate (the principal comes from the request's
// credentials, never from its body); the service authorizes, through
// Access, the one place of those rules.
type SyncService interface {
	// Info returns the protocol version, epoch and limits (GET /v1/sync/info).
	Info(ctx context.Context) (syncproto.Info, error)

	// Push applies a batch decoded by syncproto.DecodePush, whose rejected
	// map it takes as is. It returns one Result per change, in order. The
	// whole request fails with ETOOLARGE when it holds more than
	// Limits.MaxChanges changes, with EFORBIDDEN when a device pushes
	// under another device's id, and with EOPREUSED when its batch id was
	// answered before for other content. Within the batch, a change is
	// rejected with EFORBIDDEN when p may not write its scope (Access) or
	// it claims an identity or role p does not have (admit.go), with
	// EINVALID when it claims a history the server cannot vouch for, its
	// header disagrees with the stored record's or the validator refuses
	// it, with ETOOLARGE when the record would exceed
	// Limits.MaxRecordBytes, with EOPREUSED when its op id was applied
	// before with other content; the others are applied, merged, put in
	// conflict (kept, and indexed as Conflicts) or reported duplicate.
	Push(ctx context.Context, p Principal, req syncproto.PushRequest, rejected map[int]*syncproto.Error) (syncproto.PushResponse, error)

	// Pull returns the next states after cur in the scopes p pulls
	// (Access.PullScopes), narrowed by req.Scope. It fails with ESTALE
	// (detail syncproto.StartOver) when cur is from another epoch, below
	// a scope's horizon or past the end of a scope's log, with EFORBIDDEN
	// when req.Scope names a scope p does not pull, and with EINVALID for
	// a malformed scope.
	Pull(ctx context.Context, p Principal, req syncproto.PullRequest, cur syncproto.Cursor) (syncproto.PullResponse, error)

	// Record returns a record's current state, or ENOTFOUND, checking
	// nothing: it is for the server's own services (forms), not for
	// requests, which use View.
	Record(ctx context.Context, scope string, id uuid.UUID) (*syncproto.Record, error)

	// View returns what p may see of a record: its state with the derived
	// state reviewers work from (a hazard's or a follow-up task's fold at
	// server time). EFORBIDDEN when p may not see the scope, ENOTFOUND.
	View(ctx context.Context, p Principal, scope string, id uuid.UUID) (RecordView, error)

	// Conflicts lists the conflicts p may see (Access.ListConflicts):
	// EINVALID with field messages for a bad filter.
	Conflicts(ctx context.Context, p Principal, f ConflictFilter) ([]Conflict, error)

	// ResolveConflict writes chosen (any JSON value; for the field
	// "deleted", true or false) to the conflicting field as the office,
	// having seen every version, so the losers move to the record's
	// conflict log; it marks the conflict resolved and returns the new
	// record state. EFORBIDDEN unless p is an office reviewer or head,
	// ENOTFOUND for an unknown conflict, ECONFLICT when it was resolved
	// already, EINVALID when chosen is not JSON.
	ResolveConflict(ctx context.Context, p Principal, id string, chosen json.RawMessage) (*syncproto.Record, error)

	// Compact runs SyncStore.Compact on one scope. EFORBIDDEN unless p is
	// an administrator.
	Compact(ctx context.Context, p Principal, scope string, opt CompactOptions) (CompactResult, error)
}
