package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

// What a push may write. The server, not the phone, says who acted in what
// role: a phone can be lost, stolen or run a buggy build, and the office
// acts on what it stored (a hazard closed, a lesson scored). So every
// change is admitted against the authenticated principal before anything
// is written, and refused whole, with a code and a message naming what is
// wrong, when it claims an identity, a role or a history the server cannot
// vouch for:
//
//   - Identity. Every version and item a change writes is stamped with the
//     principal's own replica (HLC.Replica: a device writes as its device
//     id) and, for versions, its own user id (Author); a new record's
//     created_by is the principal's; a conflict revision is resolved by
//     the principal (ResolvedBy, ResolvedHLC). EFORBIDDEN otherwise.
//   - Roles. An event of a hazard's or a follow-up task's log names an
//     actor_role the principal acts in (a device acts in the field roles
//     its inspector holds; office roles come only from office principals)
//     and that may make such an event at all (syncproto.MayMake); its
//     actor_id, when given, is the principal's user id. EFORBIDDEN
//     otherwise. Whether the event is valid in the hazard's state at its
//     turn stays the fold's question.
//   - History. A version's vector may advance only its writer's own
//     counter beyond what the server has seen of the record; the counter
//     it claims for any other replica may not exceed the server's
//     (stored.Version()). An item's dot names only its writer. A conflict
//     revision moves to the log a version the record holds or held (see
//     heldOrSuperseded), or the writer's own. An item id of the record is
//     not reused for other content. EINVALID otherwise. Without this, a vector claiming 2^53−1
//     for a co-worker's device would make every later edit of that
//     co-worker compare as already seen, and be dropped without a
//     conflict.
//   - Clocks. Stamps (HLC walls) and the writer's own counters may not be
//     more than MaxClockAhead ahead of the server's clock: phones offline
//     for weeks stamp in the past, which is fine; a stamp years ahead would
//     win every concurrent write for years. EINVALID otherwise (the phone
//     says: set the date and time).
//
// The checks that need only the change run per change before anything is
// read (admitChange); those that need the stored record run on the change
// of each record, folded, against the state it is decided on (admitOn),
// so a forged change folded with an honest one for the same record fails
// both. Principals of automation (the admin token: imports and seeds of
// historical records written by many people) are exempt from identity
// and history, not from clocks.

// MaxClockAhead is how far ahead of the server's clock a pushed stamp may
// be. Beyond MaxClockSkew the record is flagged clock_skew; beyond this it
// is refused.
const MaxClockAhead = 30 * 24 * time.Hour

// maxOwnCounterStep bounds how far a writer's own counter may move past
// the larger of what the server holds for it and the server's clock in
// seconds (counters are clock based: max(old+1, now), see
// syncproto.Vector.Update), so that no change can bring a counter near
// MaxCounterValue, where the next write would overflow.
const maxOwnCounterStep = 1 << 20

// eventKinds are the kinds whose "events" collection is an event log.
var eventKinds = map[string]bool{"hazard": true, "follow_up_task": true}

// ActsAs reports whether the principal may act in role: a device in the
// field roles its person holds, an office principal in the office roles
// it holds; automation in any.
func (p Principal) ActsAs(role string) bool {
	switch {
	case p.Automation:
		return syncproto.KnownRole(role)
	case p.IsDevice():
		return syncproto.IsFieldRole(role) && p.Has(role)
	default:
		return syncproto.IsOfficeRole(role) && p.Has(role)
	}
}

func forbid(format string, args ...any) *syncproto.Error {
	return syncproto.Errorf(syncproto.EFORBIDDEN, format, args...)
}

func invalid(format string, args ...any) *syncproto.Error {
	return syncproto.Errorf(syncproto.EINVALID, format, args...)
}

// admitChange checks what a change claims that needs no stored state:
// identity, roles and clocks.
func admitChange(p Principal, r *syncproto.Record, now time.Time) *syncproto.Error {
	limit := now.Add(MaxClockAhead).UnixMilli()
	ahead := func(h syncproto.HLC) bool { return h.Wall > limit }
	clockErr := func(what string, h syncproto.HLC) *syncproto.Error {
		return invalid("%s is stamped %s, more than %d days ahead of the server's clock: set the phone's date and time, then sync again.",
			what, time.UnixMilli(h.Wall).UTC().Format(time.DateOnly), int(MaxClockAhead.Hours()/24))
	}
	version := func(what string, v syncproto.FieldVersion) *syncproto.Error {
		switch {
		case ahead(v.HLC):
			return clockErr(what, v.HLC)
		case p.Automation:
			return nil
		case v.HLC.Replica != p.Replica:
			return forbid("%s is signed by replica %s; this device writes only as %s.", what, v.HLC.Replica, p.Replica)
		case v.Author != p.UserID:
			return forbid("%s names author %q; you write as %q.", what, v.Author, p.UserID)
		}
		return nil
	}
	for f, vs := range r.Fields {
		for _, v := range vs {
			if e := version(fmt.Sprintf("Field %s", f), v); e != nil {
				return fieldErr(e, f)
			}
		}
	}
	for _, v := range r.Deleted {
		if e := version("The deletion", v); e != nil {
			return e
		}
	}
	for _, c := range r.Conflicts {
		switch {
		case ahead(c.ResolvedHLC):
			return clockErr("A conflict resolution of "+c.Field, c.ResolvedHLC)
		case p.Automation:
		case c.ResolvedHLC.Replica != p.Replica || c.ResolvedBy != p.UserID:
			return fieldErr(forbid("The conflict on %s is marked resolved by %q on replica %s; you resolve only as yourself.", c.Field, c.ResolvedBy, c.ResolvedHLC.Replica), c.Field)
		}
	}
	for coll, items := range r.Items {
		for _, it := range items {
			what := fmt.Sprintf("Item %s of %s", it.ID, coll)
			switch {
			case ahead(it.HLC):
				return clockErr(what, it.HLC)
			case p.Automation:
				continue
			case it.HLC.Replica != p.Replica:
				return forbid("%s is signed by replica %s; this device writes only as %s.", what, it.HLC.Replica, p.Replica)
			}
			for _, c := range it.Vector.Counters {
				if c.Replica != p.Replica {
					return invalid("%s carries a dot of replica %s: an item's dot names only its writer.", what, c.Replica)
				}
			}
			if coll == ReviewCollection && !office(p) {
				return forbid("%s: only the office writes review decisions.", what)
			}
			if coll == "events" && eventKinds[r.Kind] {
				if e := admitEvent(p, r.Kind, it); e != nil {
					return e
				}
			}
		}
	}
	return nil
}

// admitEvent checks the actor of an event a principal appends.
func admitEvent(p Principal, kind string, it syncproto.Item) *syncproto.Error {
	var ev struct {
		Type      string `json:"type"`
		ActorID   string `json:"actor_id"`
		ActorRole string `json:"actor_role"`
	}
	if err := json.Unmarshal(it.Data, &ev); err != nil {
		return invalid("Event %s is not a JSON object: %v.", it.ID, err)
	}
	switch {
	case ev.ActorID != "" && ev.ActorID != p.UserID:
		return forbid("Event %s names actor_id %q; you act as %q.", it.ID, ev.ActorID, p.UserID)
	case !p.ActsAs(ev.ActorRole):
		return forbid("Event %s (%s) names actor_role %q, which you do not act in here.", it.ID, ev.Type, ev.ActorRole)
	case !syncproto.MayMake(kind, ev.Type, ev.ActorRole):
		return forbid("Event %s: a %s may not make a %s event of a %s.", it.ID, ev.ActorRole, ev.Type, kind)
	}
	return nil
}

// admitOn checks what a record's folded change claims about the record's
// history, against the stored state it is decided on (nil when new).
func admitOn(p Principal, stored, delta *syncproto.Record, now time.Time) *syncproto.Error {
	if p.Automation {
		return nil
	}
	switch {
	case stored == nil && delta.CreatedBy != "" && delta.CreatedBy != p.UserID:
		return forbid("Record %s names created_by %q; you create records as %q.", delta.ID, delta.CreatedBy, p.UserID)
	case stored != nil && delta.CreatedBy != "" && delta.CreatedBy != stored.CreatedBy:
		return forbid("Record %s was created by %q; a change may not say otherwise.", delta.ID, stored.CreatedBy)
	}
	var known syncproto.Vector
	if stored != nil {
		known = stored.Version()
	}
	own := max(known.Counter(p.Replica), uint64(max(now.Unix(), 0))+uint64(MaxClockAhead/time.Second)) + maxOwnCounterStep
	vector := func(what string, v syncproto.Vector) *syncproto.Error {
		for _, c := range v.Counters {
			switch {
			case c.Replica == p.Replica && c.Value > own:
				return invalid("%s claims counter %d for this device, beyond any it could have reached.", what, c.Value)
			case c.Replica != p.Replica && c.Value > known.Counter(c.Replica):
				return invalid("%s claims to have seen writes of replica %s up to %d; the server holds them only up to %d. Pull, then edit again.",
					what, c.Replica, c.Value, known.Counter(c.Replica))
			}
		}
		return nil
	}
	for f, vs := range delta.Fields {
		for _, v := range vs {
			if stored != nil && holdsVersion(stored.Fields[f], v) {
				continue
			}
			if e := vector("Field "+f, v.Vector); e != nil {
				return fieldErr(e, f)
			}
		}
	}
	for _, v := range delta.Deleted {
		if stored != nil && holdsVersion(stored.Deleted, v) {
			continue
		}
		if e := vector("The deletion", v.Vector); e != nil {
			return e
		}
	}
	for _, c := range delta.Conflicts {
		switch {
		case c.Version.HLC.Replica == p.Replica: // its own earlier version
		case stored != nil && (inLog(stored.Conflicts, c) || heldOrSuperseded(conflictVersions(stored, c.Field), c.Version)):
		default:
			return fieldErr(invalid("The conflict log names a version of %s by replica %s that the server does not hold.", c.Field, c.Version.HLC.Replica), c.Field)
		}
	}
	if stored != nil {
		for coll, items := range delta.Items {
			for _, it := range items {
				for _, old := range stored.Items[coll] {
					if old.ID == it.ID && (!bytes.Equal(old.Data, it.Data) || old.HLC != it.HLC) {
						return invalid("Item %s of %s exists with other content: items are never changed; append a new one.", it.ID, coll)
					}
				}
			}
		}
	}
	return nil
}

// sameVersion reports whether two versions are one write: same stamp,
// author, value and vector.
func sameVersion(a, b syncproto.FieldVersion) bool {
	return a.HLC == b.HLC && a.Author == b.Author && bytes.Equal(a.Value, b.Value) && a.Vector.Compare(b.Vector) == syncproto.Equal
}

// holdsVersion reports whether a register holds a version.
func holdsVersion(f syncproto.Field, v syncproto.FieldVersion) bool {
	return slices.ContainsFunc(f, func(x syncproto.FieldVersion) bool { return sameVersion(x, v) })
}

// heldOrSuperseded reports whether a register holds a version, or a
// version written by someone who had seen it (its vector dominates):
// the phone saw the version on the server before a later write replaced
// it there, so the server no longer holds it but has held it. (The server
// cannot tell such a version from one made up with a small enough vector:
// a phone can put a made-up, already superseded version in the log, under
// its own name as the resolver, and change nothing else.)
func heldOrSuperseded(f syncproto.Field, v syncproto.FieldVersion) bool {
	if holdsVersion(f, v) {
		return true
	}
	for _, x := range f {
		if v.Vector.Compare(x.Vector) == syncproto.Lesser {
			return true
		}
	}
	return false
}

func inLog(log []syncproto.ConflictRevision, c syncproto.ConflictRevision) bool {
	for _, x := range log {
		if x.Field == c.Field && x.Version.HLC == c.Version.HLC {
			return true
		}
	}
	return false
}

// fieldErr names the field an error is about, for the phone to show next
// to it.
func fieldErr(e *syncproto.Error, field string) *syncproto.Error {
	return &syncproto.Error{Code: e.Code, Message: e.Message, Fields: map[string]string{field: e.Message}}
}
