package mobiletest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// Steps of a sync, as seen by Faulty.
const (
	StepInfo       = "info"
	StepPush       = "push"
	StepPull       = "pull"
	StepBlobStatus = "blob_status"
	StepChunk      = "chunk"
	StepFinish     = "finish"
	StepPutBlob    = "put_blob"
	StepEnroll     = "enroll"
)

// Mode says what Faulty does with one call.
type Mode int

// Modes of a call.
const (
	Pass       Mode = iota // the call goes through
	FailBefore             // the call fails before reaching the server
	FailAfter              // the server does the work, the answer is lost
)

// ErrKilled is the error of a call that Faulty failed: the phone "dies"
// here, and the test closes and reopens its engine.
var ErrKilled = errors.New("mobiletest: killed")

// Faulty wraps a Transport and fails the calls its Fault function picks.
// Calls are numbered from 0 across all steps, in the order made.
type Faulty struct {
	T     mobile.Transport
	Fault func(call int, step string) Mode

	mu      sync.Mutex
	calls   int
	Steps   []string    // every step called, in order
	Batches []uuid.UUID // the batch id of every push, in order
	// Answers holds, for every call of Steps, the server's answer as
	// JSON, or "" when the call failed or its answer was lost: what a
	// trace needs to show that two runs got the same answers (cursors,
	// epochs, revisions, ids, tokens).
	Answers []string
}

func (f *Faulty) decide(step string) (int, Mode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.calls
	f.calls++
	f.Steps = append(f.Steps, step)
	f.Answers = append(f.Answers, "")
	if f.Fault == nil {
		return n, Pass
	}
	return n, f.Fault(n, step)
}

// Calls returns how many calls were made.
func (f *Faulty) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func run[T any](f *Faulty, step string, call func() (T, error)) (T, error) {
	var zero T
	n, m := f.decide(step)
	if m == FailBefore {
		return zero, ErrKilled
	}
	v, err := call()
	if m == FailAfter {
		return zero, ErrKilled
	}
	if err == nil {
		b, jerr := json.Marshal(v)
		if jerr != nil {
			b = []byte(jerr.Error())
		}
		f.mu.Lock()
		f.Answers[n] = string(b)
		f.mu.Unlock()
	}
	return v, err
}

// Info implements mobile.Transport.
func (f *Faulty) Info(ctx context.Context) (syncproto.Info, error) {
	return run(f, StepInfo, func() (syncproto.Info, error) { return f.T.Info(ctx) })
}

// Push implements mobile.Transport.
func (f *Faulty) Push(ctx context.Context, req *syncproto.PushRequest) (*syncproto.PushResponse, error) {
	f.mu.Lock()
	f.Batches = append(f.Batches, req.BatchID)
	f.mu.Unlock()
	return run(f, StepPush, func() (*syncproto.PushResponse, error) { return f.T.Push(ctx, req) })
}

// Pull implements mobile.Transport.
func (f *Faulty) Pull(ctx context.Context, req *syncproto.PullRequest) (*syncproto.PullResponse, error) {
	return run(f, StepPull, func() (*syncproto.PullResponse, error) { return f.T.Pull(ctx, req) })
}

// BlobStatus implements mobile.Transport.
func (f *Faulty) BlobStatus(ctx context.Context, sha string) (mobile.BlobStatus, error) {
	return run(f, StepBlobStatus, func() (mobile.BlobStatus, error) { return f.T.BlobStatus(ctx, sha) })
}

// PutChunk implements mobile.Transport.
func (f *Faulty) PutChunk(ctx context.Context, sha string, off int64, data []byte) (mobile.BlobStatus, error) {
	return run(f, StepChunk, func() (mobile.BlobStatus, error) { return f.T.PutChunk(ctx, sha, off, data) })
}

// FinishBlob implements mobile.Transport.
func (f *Faulty) FinishBlob(ctx context.Context, sha string, size int64, ct string) (mobile.BlobStatus, error) {
	return run(f, StepFinish, func() (mobile.BlobStatus, error) { return f.T.FinishBlob(ctx, sha, size, ct) })
}

// PutBlob implements mobile.Transport.
func (f *Faulty) PutBlob(ctx context.Context, sha, ct string, data []byte) (mobile.BlobStatus, error) {
	return run(f, StepPutBlob, func() (mobile.BlobStatus, error) { return f.T.PutBlob(ctx, sha, ct, data) })
}

// Enroll implements mobile.Transport.
func (f *Faulty) Enroll(ctx context.Context, req mobile.EnrollRequest) (mobile.EnrollResponse, error) {
	return run(f, StepEnroll, func() (mobile.EnrollResponse, error) { return f.T.Enroll(ctx, req) })
}
