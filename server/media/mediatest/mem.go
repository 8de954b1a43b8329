// Package mediatest holds in-memory implementations of media.BlobStore and
// media.MetaStore, for fast unit tests, and the conformance suites that
// every implementation must pass (TestBlobStore, TestMetaStore): the
// in-memory ones here, server/minio's on a real MinIO and server/mongo's
// on a real FerretDB.
//
// It is for _test.go files only. It must not import storage drivers or
// Fiber.
package mediatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Blobs is an in-memory media.BlobStore. Set Down to make every call fail
// with EUNAVAILABLE, as a store that cannot be reached does.
type Blobs struct {
	Down atomic.Bool
	Now  func() time.Time // defaults to time.Now

	mu      sync.Mutex
	objects map[string]memObject
}

var _ media.BlobStore = (*Blobs)(nil)

type memObject struct {
	data        []byte
	contentType string
	modified    time.Time
}

// NewBlobs returns an empty store.
func NewBlobs() *Blobs { return &Blobs{objects: map[string]memObject{}} }

func (b *Blobs) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Blobs) down() error {
	if b.Down.Load() {
		return syncproto.Errorf(syncproto.EUNAVAILABLE, "The photo store is unavailable; try again later.")
	}
	return nil
}

// Put implements media.BlobStore.
func (b *Blobs) Put(ctx context.Context, key string, r io.Reader, size int64, opts media.PutOptions) error {
	if err := b.down(); err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("mediatest: put %s: %w", key, err)
	}
	if int64(len(data)) != size {
		return fmt.Errorf("mediatest: put %s: read %d bytes, want %d", key, len(data), size)
	}
	if opts.SHA256 != "" {
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != opts.SHA256 {
			return syncproto.Errorf(syncproto.EINVALID, "The bytes do not have the sha256 given.")
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[key]; ok && opts.IfAbsent {
		return syncproto.Errorf(syncproto.ECONFLICT, "%s exists.", key)
	}
	b.objects[key] = memObject{data: data, contentType: opts.ContentType, modified: b.now()}
	return nil
}

// Get implements media.BlobStore.
func (b *Blobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := b.down(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return nil, syncproto.Errorf(syncproto.ENOTFOUND, "No object %s.", key)
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// Stat implements media.BlobStore.
func (b *Blobs) Stat(ctx context.Context, key string) (media.BlobInfo, error) {
	if err := b.down(); err != nil {
		return media.BlobInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return media.BlobInfo{}, syncproto.Errorf(syncproto.ENOTFOUND, "No object %s.", key)
	}
	return media.BlobInfo{Key: key, Size: int64(len(o.data)), ContentType: o.contentType, Modified: o.modified}, nil
}

// List implements media.BlobStore.
func (b *Blobs) List(ctx context.Context, prefix string) ([]media.BlobInfo, error) {
	if err := b.down(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []media.BlobInfo
	for k, o := range b.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, media.BlobInfo{Key: k, Size: int64(len(o.data)), ContentType: o.contentType, Modified: o.modified})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Remove implements media.BlobStore.
func (b *Blobs) Remove(ctx context.Context, keys ...string) error {
	if err := b.down(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		delete(b.objects, k)
	}
	return nil
}

// PresignGet implements media.BlobStore with a "mem:" URL.
func (b *Blobs) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := b.down(); err != nil {
		return "", err
	}
	return "mem:" + url.PathEscape(key) + "?ttl=" + ttl.String(), nil
}

// Keys returns every key in the store, sorted.
func (b *Blobs) Keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.objects))
}

// Meta is an in-memory media.MetaStore.
type Meta struct {
	mu      sync.Mutex
	records map[string]media.RecordRefs
	photos  map[string]media.Photo
	jobs    map[string]*memJob
	calls   map[string]int
}

var _ media.BatchMetaStore = (*Meta)(nil)

type memJob struct {
	job   media.ThumbJob
	state string // "pending" or "working"
	next  time.Time
	err   string
}

// NewMeta returns an empty store.
func NewMeta() *Meta {
	return &Meta{records: map[string]media.RecordRefs{}, photos: map[string]media.Photo{}, jobs: map[string]*memJob{}, calls: map[string]int{}}
}

// lock takes the store's lock for a call of the method name, and counts
// the call (see Calls).
func (m *Meta) lock(name string) {
	m.mu.Lock()
	m.calls[name]++
}

// Calls returns how often each method was called since the store was made
// or ResetCalls was last called: a call of the in-memory store stands for
// a round trip (or a bounded number of them) to a real one.
func (m *Meta) Calls() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.calls)
}

// ResetCalls forgets the calls counted so far.
func (m *Meta) ResetCalls() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.calls)
}

// Records implements media.BatchMetaStore.
func (m *Meta) Records(ctx context.Context, keys []media.RecordKey) (map[media.RecordKey]media.RecordRefs, error) {
	m.lock("Records")
	defer m.mu.Unlock()
	out := map[media.RecordKey]media.RecordRefs{}
	for _, k := range keys {
		if r, ok := m.records[recordKey(k.SchoolID, k.RecordID)]; ok {
			r.Photos = slices.Clone(r.Photos)
			r.Attachments = slices.Clone(r.Attachments)
			out[k] = r
		}
	}
	return out, nil
}

// NotePhotos implements media.BatchMetaStore.
func (m *Meta) NotePhotos(ctx context.Context, notes []media.PhotoNote) error {
	m.lock("NotePhotos")
	defer m.mu.Unlock()
	for _, n := range notes {
		m.expectPhoto(n.Ref, n.SchoolID)
		p := m.photos[n.Ref.SHA256]
		if (n.Holder == "" || slices.Contains(p.Holders, n.Holder)) && !slices.Contains(p.Vouched, n.SchoolID) {
			p.Vouched = append(slices.Clone(p.Vouched), n.SchoolID)
			m.photos[n.Ref.SHA256] = p
		}
	}
	return nil
}

// PutRecords implements media.BatchMetaStore.
func (m *Meta) PutRecords(ctx context.Context, puts []media.RecordPut) error {
	m.lock("PutRecords")
	defer m.mu.Unlock()
	var lost error
	for _, p := range puts {
		if err := m.putRecord(p.Record, p.Prev); err != nil {
			lost = err
		}
	}
	return lost
}

func notFound(what string) error { return syncproto.Errorf(syncproto.ENOTFOUND, "No %s.", what) }

func recordKey(schoolID, recordID string) string { return schoolID + "/" + recordID }

// Record implements media.MetaStore.
func (m *Meta) Record(ctx context.Context, schoolID, recordID string) (media.RecordRefs, error) {
	m.lock("Record")
	defer m.mu.Unlock()
	r, ok := m.records[recordKey(schoolID, recordID)]
	if !ok {
		return media.RecordRefs{}, notFound("record " + recordID)
	}
	r.Photos = slices.Clone(r.Photos)
	r.Attachments = slices.Clone(r.Attachments)
	return r, nil
}

// RecordsByID implements media.MetaStore.
func (m *Meta) RecordsByID(ctx context.Context, recordID string) ([]media.RecordRefs, error) {
	m.lock("RecordsByID")
	defer m.mu.Unlock()
	var out []media.RecordRefs
	for _, r := range m.records {
		if r.RecordID == recordID {
			r.Photos = slices.Clone(r.Photos)
			r.Attachments = slices.Clone(r.Attachments)
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b media.RecordRefs) int { return strings.Compare(a.SchoolID, b.SchoolID) })
	return out, nil
}

// PutRecord implements media.MetaStore.
func (m *Meta) PutRecord(ctx context.Context, r media.RecordRefs, prev *media.RecordRefs) error {
	m.lock("PutRecord")
	defer m.mu.Unlock()
	return m.putRecord(r, prev)
}

func (m *Meta) putRecord(r media.RecordRefs, prev *media.RecordRefs) error {
	key := recordKey(r.SchoolID, r.RecordID)
	cur, ok := m.records[key]
	switch {
	case prev == nil && ok, prev != nil && (!ok || cur.Rev != prev.Rev):
		return syncproto.Errorf(syncproto.ECONFLICT, "Record %s changed.", r.RecordID)
	}
	r.Photos = slices.Clone(r.Photos)
	r.Attachments = slices.Clone(r.Attachments)
	m.records[key] = r
	return nil
}

// ExpectPhoto implements media.MetaStore.
func (m *Meta) ExpectPhoto(ctx context.Context, ref syncproto.PhotoRef, schoolID string) error {
	m.lock("ExpectPhoto")
	defer m.mu.Unlock()
	m.expectPhoto(ref, schoolID)
	return nil
}

func (m *Meta) expectPhoto(ref syncproto.PhotoRef, schoolID string) {
	p, ok := m.photos[ref.SHA256]
	if !ok {
		p = media.Photo{SHA256: ref.SHA256, State: media.StateExpected, Size: ref.Size, ContentType: ref.ContentType}
	}
	if !slices.Contains(p.Schools, schoolID) {
		p.Schools = append(slices.Clone(p.Schools), schoolID)
	}
	m.photos[ref.SHA256] = p
}

// Vouch implements media.MetaStore.
func (m *Meta) Vouch(ctx context.Context, sha, holder string, schools []string) error {
	m.lock("Vouch")
	defer m.mu.Unlock()
	p, ok := m.photos[sha]
	if !ok {
		return notFound("photo " + sha)
	}
	if holder != "" && !slices.Contains(p.Holders, holder) {
		p.Holders = append(slices.Clone(p.Holders), holder)
	}
	for _, s := range schools {
		if !slices.Contains(p.Vouched, s) {
			p.Vouched = append(slices.Clone(p.Vouched), s)
		}
	}
	m.photos[sha] = p
	return nil
}

// Unreferenced implements media.MetaStore.
func (m *Meta) Unreferenced(ctx context.Context, limit int) ([]media.Photo, error) {
	m.lock("Unreferenced")
	defer m.mu.Unlock()
	var out []media.Photo
	for _, p := range m.photos {
		if p.State == media.StateComplete && len(p.Schools) == 0 && len(out) < limit {
			out = append(out, p)
		}
	}
	return out, nil
}

// ForgetPhoto implements media.MetaStore.
func (m *Meta) ForgetPhoto(ctx context.Context, sha string) (bool, error) {
	m.lock("ForgetPhoto")
	defer m.mu.Unlock()
	p, ok := m.photos[sha]
	if !ok || len(p.Schools) > 0 {
		return false, nil
	}
	delete(m.photos, sha)
	delete(m.jobs, sha)
	return true, nil
}

// Photo implements media.MetaStore.
func (m *Meta) Photo(ctx context.Context, sha string) (media.Photo, error) {
	m.lock("Photo")
	defer m.mu.Unlock()
	p, ok := m.photos[sha]
	if !ok {
		return media.Photo{}, notFound("photo " + sha)
	}
	p.Schools = slices.Clone(p.Schools)
	p.Holders = slices.Clone(p.Holders)
	p.Vouched = slices.Clone(p.Vouched)
	p.Thumbs = maps.Clone(p.Thumbs)
	return p, nil
}

// PhotoStored implements media.MetaStore.
func (m *Meta) PhotoStored(ctx context.Context, sha string, st media.Stored) error {
	m.lock("PhotoStored")
	defer m.mu.Unlock()
	p, ok := m.photos[sha]
	if ok && p.State == media.StateComplete {
		return nil
	}
	p.SHA256, p.State = sha, media.StateComplete
	p.Size, p.ContentType, p.StoredAt, p.UploadedBy = st.Size, st.ContentType, st.At.Truncate(time.Millisecond), st.By
	p.ThumbState = media.ThumbsPending
	m.photos[sha] = p
	return nil
}

// QueueThumbs implements media.MetaStore.
func (m *Meta) QueueThumbs(ctx context.Context, sha, contentType string, now time.Time) error {
	m.lock("QueueThumbs")
	defer m.mu.Unlock()
	if _, ok := m.jobs[sha]; !ok {
		m.jobs[sha] = &memJob{job: media.ThumbJob{SHA256: sha, ContentType: contentType}, state: "pending", next: now}
	}
	return nil
}

// ClaimThumbs implements media.MetaStore.
func (m *Meta) ClaimThumbs(ctx context.Context, now time.Time, lease time.Duration) (media.ThumbJob, error) {
	m.lock("ClaimThumbs")
	defer m.mu.Unlock()
	var due []*memJob
	for _, j := range m.jobs {
		if (j.state == "pending" && !j.next.After(now)) || (j.state == "working" && j.job.Until.Before(now)) {
			due = append(due, j)
		}
	}
	if len(due) == 0 {
		return media.ThumbJob{}, notFound("thumbnail job due")
	}
	sort.Slice(due, func(a, b int) bool {
		if !due[a].next.Equal(due[b].next) {
			return due[a].next.Before(due[b].next)
		}
		return due[a].job.SHA256 < due[b].job.SHA256
	})
	j := due[0]
	j.state = "working"
	j.job.Until = now.Add(lease).Truncate(time.Millisecond)
	out := j.job
	j.job.Unfinished++ // until ThumbsRetry or ThumbsDone
	return out, nil
}

func (m *Meta) leased(job media.ThumbJob) (*memJob, error) {
	j, ok := m.jobs[job.SHA256]
	if !ok || j.state != "working" || !j.job.Until.Equal(job.Until) {
		return nil, syncproto.Errorf(syncproto.ECONFLICT, "The thumbnail job of %s is no longer leased to this worker.", job.SHA256)
	}
	return j, nil
}

// ThumbsDone implements media.MetaStore.
func (m *Meta) ThumbsDone(ctx context.Context, job media.ThumbJob, res media.ThumbResult) error {
	m.lock("ThumbsDone")
	defer m.mu.Unlock()
	if _, err := m.leased(job); err != nil {
		return err
	}
	p, ok := m.photos[job.SHA256]
	if !ok {
		delete(m.jobs, job.SHA256)
		return nil // forgotten meanwhile
	}
	p.ThumbState, p.ThumbError, p.Thumbs, p.EXIF = res.State, res.Error, maps.Clone(res.Thumbs), res.EXIF
	m.photos[job.SHA256] = p
	delete(m.jobs, job.SHA256)
	return nil
}

// ThumbsRetry implements media.MetaStore.
func (m *Meta) ThumbsRetry(ctx context.Context, job media.ThumbJob, next time.Time, msg string) error {
	m.lock("ThumbsRetry")
	defer m.mu.Unlock()
	j, err := m.leased(job)
	if err != nil {
		return err
	}
	j.state, j.next, j.err = "pending", next, msg
	j.job.Attempts++
	j.job.Unfinished = 0
	j.job.Until = time.Time{}
	return nil
}

// Jobs returns how many thumbnail jobs are queued or running.
func (m *Meta) Jobs() int {
	m.lock("Jobs")
	defer m.mu.Unlock()
	return len(m.jobs)
}
