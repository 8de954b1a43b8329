// Package mobiletest holds test doubles for the phone engine: an
// in-memory sync server that speaks the protocol of syncproto (directly,
// as a mobile.Transport, or over HTTP with the routes of the real API), a
// Transport wrapper that fails or "kills" the phone at a chosen step, and
// simulated phones.
//
// The fake server is deliberately simple: one scope (every device sees
// every record), op ids and batch ids remembered forever, records merged
// with syncproto.Decide. It is not the real server (server/...), which
// this package, like all of mobile, must never import, nor Fiber.
package mobiletest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// Server is an in-memory sync server. Its methods are safe for concurrent
// use.
type Server struct {
	// Limits advertised by Info.
	Limits syncproto.Limits
	// Reject, when set, is asked about every new change; a non-nil error
	// rejects it (the server-side form validation of the real server).
	Reject func(ch syncproto.Change) *syncproto.Error
	// Now is the server clock; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	newID    func() uuid.UUID // makes epochs; nil: random
	replica  uuid.UUID        // the office identity, for Edit
	clock    syncproto.HLC
	st       state
	devices  map[string]uuid.UUID // token → device
	users    map[string]string    // token → user id
	codes    map[string]string    // enrollment code → user id
	enrolled map[uuid.UUID]bool

	// Counters for tests.
	Pushes, Pulls, Chunks int
}

type blob struct {
	data        []byte
	complete    bool
	contentType string
}

// state is what a restore from backup brings back.
type state struct {
	epoch   uuid.UUID
	records map[uuid.UUID]*syncproto.Record
	log     []uuid.UUID               // seq-1 → record id
	ops     map[uuid.UUID]string      // op id → digest
	applied map[uuid.UUID]int         // op id → times applied (must stay 1)
	batches map[uuid.UUID]batchResult // batch id → stored answer
	blobs   map[string]*blob          // sha256 → blob
}

type batchResult struct {
	digest string
	resp   syncproto.PushResponse
}

func newState() state {
	return state{epoch: uuid.Must(uuid.NewV7()), records: map[uuid.UUID]*syncproto.Record{}, ops: map[uuid.UUID]string{},
		applied: map[uuid.UUID]int{}, batches: map[uuid.UUID]batchResult{}, blobs: map[string]*blob{}}
}

// NewServer returns an empty server with the default limits.
func NewServer() *Server {
	office := uuid.MustParse("0192b000-0000-7000-8000-00000000f001")
	return &Server{Limits: mobile.DefaultLimits, replica: office, clock: syncproto.HLC{Replica: office}, st: newState(),
		devices: map[string]uuid.UUID{}, users: map[string]string{}, codes: map[string]string{}, enrolled: map[uuid.UUID]bool{}}
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// UseIDs makes the server take its epochs from newID, a simulation's
// seeded source (Sim.IDs), so that its cursors are the same on every run,
// and starts a new epoch from it. Call it before the server is used.
func (s *Server) UseIDs(newID func() uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.newID = newID
	s.st.epoch = s.epoch()
}

// epoch returns a new epoch; s.mu is held.
func (s *Server) epoch() uuid.UUID {
	if s.newID != nil {
		return s.newID()
	}
	return uuid.Must(uuid.NewV7())
}

// AddCode makes a one-time enrollment code for a user.
func (s *Server) AddCode(code, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = userID
}

// AddDevice registers a token for a device without enrollment.
func (s *Server) AddDevice(token string, device uuid.UUID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices[token], s.users[token], s.enrolled[device] = device, userID, true
}

func (s *Server) auth(token string) (uuid.UUID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[token]
	if !ok {
		return uuid.Nil, syncproto.Errorf(syncproto.EUNAUTHORIZED, "This device is not enrolled or was revoked.")
	}
	return d, nil
}

// Enroll claims a code.
func (s *Server) Enroll(req mobile.EnrollRequest) (mobile.EnrollResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user, ok := s.codes[req.Code]
	if !ok {
		return mobile.EnrollResponse{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "This enrollment code is not valid. Ask the office for a new one.")
	}
	if s.enrolled[req.DeviceID] {
		return mobile.EnrollResponse{}, syncproto.Errorf(syncproto.ECONFLICT, "Device %s is already enrolled.", req.DeviceID)
	}
	delete(s.codes, req.Code)
	b := make([]byte, 32)
	rand.Read(b)
	tok := "fsd_" + base64.RawURLEncoding.EncodeToString(b)
	s.devices[tok], s.users[tok], s.enrolled[req.DeviceID] = req.DeviceID, user, true
	return mobile.EnrollResponse{Token: tok, DeviceID: req.DeviceID.String(), InspectorID: user, UserID: user, Name: "督学 " + user}, nil
}

// Info returns the protocol, epoch and limits.
func (s *Server) Info() syncproto.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return syncproto.Info{Protocol: syncproto.ProtocolVersion, Epoch: s.st.epoch, Limits: s.Limits, ServerTime: s.now().UTC()}
}

func digest(v any) string {
	b, _ := syncproto.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Push applies a batch for a device.
func (s *Server) Push(device uuid.UUID, req *syncproto.PushRequest) (*syncproto.PushResponse, error) {
	// Round-trip through JSON as the wire would, so nothing aliases the
	// phone's memory.
	body, err := syncproto.Marshal(req)
	if err != nil {
		return nil, err
	}
	dreq, rejected, err := syncproto.DecodePush(body)
	if err != nil {
		return nil, err
	}
	if dreq.DeviceID != device {
		return nil, syncproto.Errorf(syncproto.EFORBIDDEN, "device_id is not this token's device.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Pushes++
	bd := digest(dreq.Changes)
	if b, ok := s.st.batches[dreq.BatchID]; ok {
		if b.digest != bd {
			return nil, syncproto.Errorf(syncproto.EOPREUSED, "Batch %s was sent before with other changes.", dreq.BatchID)
		}
		out := b.resp
		return &out, nil
	}
	resp := syncproto.PushResponse{Protocol: syncproto.ProtocolVersion, ServerTime: s.now().UTC()}
	for i, ch := range dreq.Changes {
		res := syncproto.Result{OpID: ch.OpID}
		switch {
		case rejected[i] != nil:
			res.Status, res.Error = syncproto.StatusRejected, rejected[i]
		case s.st.ops[ch.OpID] != "":
			if s.st.ops[ch.OpID] != ch.Digest() {
				res.Status, res.Error = syncproto.StatusRejected, syncproto.Errorf(syncproto.EOPREUSED, "Op %s was sent before with other content.", ch.OpID)
			} else {
				res.Status = syncproto.StatusDuplicate
				if r := s.st.records[ch.Record.ID]; r != nil {
					res.Rev = r.Rev
				}
			}
		default:
			if s.Reject != nil {
				if e := s.Reject(ch); e != nil {
					res.Status, res.Error = syncproto.StatusRejected, e
					break
				}
			}
			stored := s.st.records[ch.Record.ID]
			d, err := syncproto.Decide(stored, ch.Record, ch.Base)
			if err != nil {
				res.Status, res.Error = syncproto.StatusRejected, err.(*syncproto.Error)
				break
			}
			s.st.ops[ch.OpID] = ch.Digest()
			s.st.applied[ch.OpID]++
			res.Status, res.Conflicts = d.Status, d.Conflicts
			if d.Changed {
				s.store(d.Merged)
			}
			res.Rev = s.st.records[ch.Record.ID].Rev
		}
		resp.Results = append(resp.Results, res)
	}
	s.st.batches[dreq.BatchID] = batchResult{digest: bd, resp: resp}
	return &resp, nil
}

// store saves a record state with the next revision and logs it.
func (s *Server) store(r *syncproto.Record) {
	r = r.Clone()
	s.st.log = append(s.st.log, r.ID)
	r.Rev = int64(len(s.st.log))
	if r.ServerReceivedAt == nil {
		t := s.now().UTC().Truncate(time.Millisecond)
		r.ServerReceivedAt = &t
	}
	s.st.records[r.ID] = r
}

const scope = "all"

// Pull returns the next page after a cursor.
func (s *Server) Pull(req *syncproto.PullRequest) (*syncproto.PullResponse, error) {
	body, _ := json.Marshal(req)
	dreq, cur, err := syncproto.DecodePull(body)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Pulls++
	if dreq.Cursor != "" && cur.Epoch != s.st.epoch {
		return nil, syncproto.Errorf(syncproto.ESTALE, syncproto.StartOver)
	}
	limit := dreq.Limit
	if limit <= 0 || limit > s.Limits.MaxPull {
		limit = s.Limits.MaxPull
	}
	pos := cur.Pos[scope]
	if pos > int64(len(s.st.log)) {
		return nil, syncproto.Errorf(syncproto.ESTALE, syncproto.StartOver)
	}
	seen := map[uuid.UUID]bool{}
	resp := &syncproto.PullResponse{Protocol: syncproto.ProtocolVersion, ServerTime: s.now().UTC()}
	for pos < int64(len(s.st.log)) && len(resp.Records) < limit {
		id := s.st.log[pos]
		pos++
		if seen[id] {
			continue
		}
		seen[id] = true
		resp.Records = append(resp.Records, s.st.records[id].Clone())
	}
	resp.More = pos < int64(len(s.st.log))
	resp.Cursor = syncproto.Cursor{Epoch: s.st.epoch, Pos: map[string]int64{scope: pos}}.Encode()
	return resp, nil
}

// BlobStatus says how much of a photo the server holds.
func (s *Server) BlobStatus(sha string) mobile.BlobStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blobStatus(sha)
}

func (s *Server) blobStatus(sha string) mobile.BlobStatus {
	b := s.st.blobs[sha]
	switch {
	case b == nil:
		return mobile.BlobStatus{SHA256: sha, State: mobile.BlobMissing}
	case b.complete:
		return mobile.BlobStatus{SHA256: sha, State: mobile.BlobComplete, Received: int64(len(b.data)), Size: int64(len(b.data))}
	}
	return mobile.BlobStatus{SHA256: sha, State: mobile.BlobPartial, Received: int64(len(b.data))}
}

// PutChunk stores bytes at offset.
func (s *Server) PutChunk(sha string, off int64, data []byte) (mobile.BlobStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Chunks++
	b := s.st.blobs[sha]
	if b == nil {
		b = &blob{}
		s.st.blobs[sha] = b
	}
	if b.complete {
		return s.blobStatus(sha), nil
	}
	if off > int64(len(b.data)) {
		return mobile.BlobStatus{}, syncproto.Errorf(syncproto.ECONFLICT, "Offset %d is beyond the %d bytes received.", off, len(b.data))
	}
	b.data = append(b.data[:off:off], data...)
	return s.blobStatus(sha), nil
}

// FinishBlob checks a chunked upload.
func (s *Server) FinishBlob(sha string, size int64, ct string) (mobile.BlobStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.st.blobs[sha]
	if b == nil {
		return mobile.BlobStatus{}, syncproto.Errorf(syncproto.ENOTFOUND, "No upload of %s.", sha)
	}
	if b.complete {
		return s.blobStatus(sha), nil
	}
	sum := sha256.Sum256(b.data)
	if int64(len(b.data)) != size || hex.EncodeToString(sum[:]) != sha {
		delete(s.st.blobs, sha)
		return mobile.BlobStatus{}, syncproto.Errorf(syncproto.EINVALID, "The upload does not match its size and hash; send it again.")
	}
	b.complete, b.contentType = true, ct
	return s.blobStatus(sha), nil
}

// PutBlob stores a whole photo.
func (s *Server) PutBlob(sha, ct string, data []byte) (mobile.BlobStatus, error) {
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != sha {
		return mobile.BlobStatus{}, syncproto.Errorf(syncproto.EINVALID, "The photo does not match its hash.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.st.blobs[sha]; b != nil && b.complete {
		return s.blobStatus(sha), nil
	}
	s.st.blobs[sha] = &blob{data: append([]byte(nil), data...), complete: true, contentType: ct}
	return s.blobStatus(sha), nil
}

// Blob returns a complete photo's bytes.
func (s *Server) Blob(sha string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.st.blobs[sha]
	if b == nil || !b.complete {
		return nil, false
	}
	return append([]byte(nil), b.data...), true
}

// Records returns copies of every record the server holds.
func (s *Server) Records() map[uuid.UUID]*syncproto.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uuid.UUID]*syncproto.Record, len(s.st.records))
	for id, r := range s.st.records {
		out[id] = r.Clone()
	}
	return out
}

// Applied returns how many times each op id was applied (never more than
// once if the server is idempotent).
func (s *Server) Applied() map[uuid.UUID]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uuid.UUID]int, len(s.st.applied))
	for k, v := range s.st.applied {
		out[k] = v
	}
	return out
}

// Put stores a record as the office would (a school, an assignment, an
// office edit), merged into what is stored.
func (s *Server) Put(r *syncproto.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := syncproto.Merge(s.st.records[r.ID], r)
	if err != nil {
		return err
	}
	s.store(m)
	return nil
}

// Edit writes a field of a stored record as the office, with the office's
// replica id: a concurrent edit for conflict tests.
func (s *Server) Edit(id uuid.UUID, field string, value json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.st.records[id]
	if r == nil {
		return syncproto.Errorf(syncproto.ENOTFOUND, "No record %s.", id)
	}
	w := &syncproto.Writer{Replica: s.replica, Author: "office", Clock: s.clock, Now: s.now()}
	next, _ := syncproto.Set(r, field, value, w)
	s.clock = w.Clock
	s.store(next)
	return nil
}

// Snapshot is a copy of the server's state, for restore tests.
type Snapshot struct{ st state }

// Snapshot copies the state.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{st: copyState(s.st)}
}

// Restore brings back a snapshot under a new epoch, as a server restored
// from a backup: cursors made since then are stale.
func (s *Server) Restore(snap Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = copyState(snap.st)
	s.st.epoch = s.epoch()
}

// NewEpoch makes every cursor stale (a rebuilt log).
func (s *Server) NewEpoch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.epoch = s.epoch()
}

func copyState(st state) state {
	out := newState()
	out.epoch = st.epoch
	for k, v := range st.records {
		out.records[k] = v.Clone()
	}
	out.log = append([]uuid.UUID(nil), st.log...)
	for k, v := range st.ops {
		out.ops[k] = v
	}
	for k, v := range st.applied {
		out.applied[k] = v
	}
	for k, v := range st.batches {
		out.batches[k] = v
	}
	for k, v := range st.blobs {
		c := *v
		c.data = append([]byte(nil), v.data...)
		out.blobs[k] = &c
	}
	return out
}

// Transport returns a mobile.Transport that calls the server directly
// for the device holding token.
func (s *Server) Transport(token string) mobile.Transport { return &direct{s: s, token: token} }

type direct struct {
	s     *Server
	token string
}

func (d *direct) Info(ctx context.Context) (syncproto.Info, error) {
	if err := ctx.Err(); err != nil {
		return syncproto.Info{}, err
	}
	return d.s.Info(), nil
}

func (d *direct) Push(ctx context.Context, req *syncproto.PushRequest) (*syncproto.PushResponse, error) {
	dev, err := d.s.auth(d.token)
	if err != nil {
		return nil, err
	}
	resp, err := d.s.Push(dev, req)
	if err != nil {
		return nil, err
	}
	var out syncproto.PushResponse
	return &out, roundTrip(resp, &out)
}

func (d *direct) Pull(ctx context.Context, req *syncproto.PullRequest) (*syncproto.PullResponse, error) {
	if _, err := d.s.auth(d.token); err != nil {
		return nil, err
	}
	resp, err := d.s.Pull(req)
	if err != nil {
		return nil, err
	}
	var out syncproto.PullResponse
	return &out, roundTrip(resp, &out)
}

func (d *direct) BlobStatus(ctx context.Context, sha string) (mobile.BlobStatus, error) {
	if _, err := d.s.auth(d.token); err != nil {
		return mobile.BlobStatus{}, err
	}
	return d.s.BlobStatus(sha), nil
}

func (d *direct) PutChunk(ctx context.Context, sha string, off int64, data []byte) (mobile.BlobStatus, error) {
	if _, err := d.s.auth(d.token); err != nil {
		return mobile.BlobStatus{}, err
	}
	return d.s.PutChunk(sha, off, data)
}

func (d *direct) FinishBlob(ctx context.Context, sha string, size int64, ct string) (mobile.BlobStatus, error) {
	if _, err := d.s.auth(d.token); err != nil {
		return mobile.BlobStatus{}, err
	}
	return d.s.FinishBlob(sha, size, ct)
}

func (d *direct) PutBlob(ctx context.Context, sha, ct string, data []byte) (mobile.BlobStatus, error) {
	if _, err := d.s.auth(d.token); err != nil {
		return mobile.BlobStatus{}, err
	}
	return d.s.PutBlob(sha, ct, data)
}

func (d *direct) Enroll(ctx context.Context, req mobile.EnrollRequest) (mobile.EnrollResponse, error) {
	return d.s.Enroll(req)
}

func roundTrip(in, out any) error {
	b, err := syncproto.Marshal(in)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("mobiletest: %w", err)
	}
	return nil
}
