// Package syncproto is the sync protocol of fieldsync, shared by the
// server, the phone engine and (through the conformance files in testdata)
// the browser app: version vectors, the record envelope, the merge rules,
// the hazard lifecycle fold, and the wire messages.
//
// It is pure: no I/O, no clock reads (time is always a parameter), no
// network, no storage drivers. It imports nothing of this module, and must
// never import server, mobile, Fiber or a database driver.
//
// # Records and versions
//
// A Record is one visit, hazard, observation or form. Its header (id,
// kind, school, form and form version, creation time and author) is fixed
// at creation. Its content is a set of Fields, each a multi-value register
// whose versions carry a version vector (Vector), a hybrid logical clock
// stamp (HLC) and the author; a set of append-only collections (Items:
// hazard events, photos, comments); a deletion register; a conflict log;
// and flags. A record id is a UUIDv7 made by the device that created it.
//
// Vectors map replicas (a phone installation, a browser, a server's
// office identity) to counters. Update advances a counter to
// max(old+1, now in Unix seconds), so a phone restored from an old backup
// still writes versions newer than those it sent before the wipe. A
// writer's counter continues across the whole record (the largest it
// holds for itself in any field, item or delete, plus one), so each of
// its writes has a distinct dot (writer, counter); a delete relies on that
// (rule 5).
//
// Device times (Record.CreatedAt, an event's occurred_at) and server times
// (ServerReceivedAt on records and items, set once by the server with
// StampArrival) are kept apart: device times are shown, server times order
// arrivals and decide deadlines.
//
// # Merge rules
//
// Merge is a join: commutative, associative and idempotent. Replicas that
// have seen the same changes hold the same record, in whatever order they
// saw them, and a change applied twice changes nothing. The rules:
//
//  1. Different fields edited concurrently: both edits are kept (fields
//     are independent registers).
//  2. The same field edited concurrently (neither vector has seen the
//     other): both versions are kept in the field. The winner shown first
//     is the one with the later HLC stamp, ties broken by replica id, and
//     is the same on every replica (Wins is a total order). The HLC is bumped past every stamp a replica receives, so a
//     phone with a wrong clock still orders sensibly after one sync; the
//     server flags stamps far ahead of its clock. The field stays in
//     conflict until someone who has seen all versions writes it again
//     (Set); the superseded versions then move to the record's conflict
//     log (Record.Conflicts), which is never pruned, so a reviewer can
//     always see what lost.
//  3. A later write that has seen the earlier one (its vector is Greater)
//     replaces it: that is an ordinary edit, not a conflict.
//  4. Append-only collections merge as a set union by item id. Items are
//     immutable; the server stamps each item's arrival time once, and the
//     earliest stamp wins if two are ever seen. Each item carries its dot
//     (Item.Vector), so a delete can tell whether it had seen it.
//  5. A delete is a write to the deletion register whose vector records
//     every write its author held (each write's dot: its writer and the
//     writer's record-wide counter). The record is a tombstone only while
//     every field version and item is among them: an edit or an append
//     made concurrently with the delete (not seen by it) keeps the record
//     alive, and DeleteConflict reports the clash for review. So a delete
//     never loses an edit; deleting again after seeing the edit settles
//     it. A writer's counters increase across the whole record (not per
//     field), and a delete records only what its author held, not what
//     those writes' authors had seen, so the test is exact even when
//     phones push single-field deltas.
//  6. Two records under one id with different headers do not merge
//     (EINVALID): that is a bug or an attack, never a conflict.
//
// Decide applies a pushed delta to the stored record and classifies the
// outcome: applied (nothing the phone had not seen was on the server),
// merged (combined with edits the phone had not seen, without conflict),
// or conflict (a field now holds concurrent versions, kept for review).
//
// # Hazards and follow-up tasks
//
// A hazard's status is never written: FoldHazard folds it from the
// record's event log (the "events" collection, Event items) with the
// transition table of the domain brief. Events replay in the order the
// server received them (server stamp, then HLC and id), a phone's unsynced
// events last. Photos and notes always apply. Events that are not valid
// against the state at their turn are kept as evidence and set
// needs_review; a field observation that the hazard persists
// (verification_failed), dated after the closing evidence, reopens a
// verified or closed hazard; overdue is derived from server time only, in
// China's local date. FoldTask does the same for follow-up tasks: a task
// completed offline after it was cancelled is done, flagged
// done_after_cancel.
//
// # Conformance
//
// testdata/conformance holds vectors.json, records.json and hazards.json:
// cases with hand-checked expected outcomes that every implementation of
// this protocol, such as the browser app, must pass (TestConformance runs
// them here). Each file's "description" says how to run its cases.
//
// # The exchange
//
// Push: the phone sends POST /v1/sync/push {protocol, device_id, batch_id,
// changes: [{op_id, record (a delta), base}]} and gets one Result per
// change, in order: applied, merged, conflict, duplicate (the op id was
// applied before; nothing is written again) or rejected (with a code and
// field messages). One rejected change never blocks the rest. The same op
// id with different content is rejected with EOPREUSED. A whole batch sent
// again after a timeout gets the same results.
//
// Pull: the phone sends POST /v1/sync/pull {protocol, cursor, scope,
// limit} and gets record states in log order with the next cursor and
// whether more remain. It merges each record into its copy and stores the cursor only
// after the records, so a pull interrupted anywhere is simply repeated.
// A cursor from another epoch, older than the tombstone horizon, beyond
// the log, or one this server could not have made at all (corrupted,
// forged, from a newer build) gets ESTALE (HTTP 410, StartOverError): the
// phone pulls again from an empty cursor. Every error answer has the body ErrorResponse,
// {"error":{"code","message","fields"}}; the codes are in errors.go.
//
// Limits (GET /v1/sync/info) tell the phone the largest batch, body and
// pull page the server accepts before it is refused. The wire form of
// every message is pinned by the golden files in testdata (*.golden).
package syncproto
