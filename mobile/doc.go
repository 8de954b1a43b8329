// Package mobile is the phone's sync engine: the local store of records,
// the outbox of edits waiting to be pushed, the queue of photos waiting to
// be uploaded, and Sync, which drains them against the server and pulls
// what others changed.
//
// An inspector works offline for days, the OS kills the app, the battery
// dies in the middle of a sync. The engine is built so that none of that
// loses work or stops convergence:
//
//   - Every local edit writes the new record state and its outbox entry in
//     one bbolt transaction (Engine.Save, Append, Delete). Records are the
//     state-based CRDTs of syncproto; an edit is a delta made by
//     syncproto.Set, Delete or Append, and several unsent edits of one
//     record fold into one entry with syncproto.Merge.
//   - An entry put into a push batch is marked in flight with the batch id
//     before the request leaves. A sync killed after the request was sent
//     resends the same batch id with the same op ids and the same content,
//     so the server answers with the stored results (or "duplicate"). An
//     entry is never changed while in flight, and an op id is never sent
//     with two different contents.
//   - Pulled records are merged into the local copy (a join, so local
//     unsynced edits survive) and the cursor is stored in the same
//     transaction as the records of its page.
//   - Photos are content-addressed: the record carries {sha256, size,
//     content_type} and syncs first; the binary follows in resumable chunks
//     (the server says how much it holds) and is marked done only when the
//     server reports it complete under its hash.
//   - Rejected changes and conflicting fields are surfaced to the app as
//     Problems, which it lists and resolves.
//
// A phone restored from an old backup of its database keeps its device id;
// Vector.Update makes its new versions dominate what it sent before, batch
// ids are random, and an op id the server knows with other content
// (EOPREUSED) is re-sent under a new op id, which a join makes harmless.
//
// The engine talks to the server only through the Transport interface; the
// HTTP implementation (HTTPTransport) is package client, the API's one Go
// client, over the wire types of syncproto. This package must never import
// server (or any server/... package) or Fiber: the phone and the server
// share only syncproto, forms and the wire client. It is bound for native apps through mobile/bind.
package mobile
