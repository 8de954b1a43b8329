package mobile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// hashFile returns the hex sha256 and size of a file.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func contentTypeOf(path string) string {
	if ct := mime.TypeByExtension(filepath.Ext(path)); ct != "" {
		return ct
	}
	f, err := os.Open(path)
	if err != nil {
		return "application/octet-stream"
	}
	defer f.Close()
	buf := make([]byte, 512)
	n, _ := io.ReadFull(f, buf)
	return http.DetectContentType(buf[:n])
}

// AttachPhoto queues the photo at path for upload and returns the
// reference a record stores ({sha256, size, content_type}). The app must
// keep the file at path until the photo's state is done (see Photos). A
// photo already queued or uploaded is not queued twice. contentType may
// be empty: it is then guessed from the name or the bytes.
func (e *Engine) AttachPhoto(path, contentType string) (syncproto.PhotoRef, error) {
	ref, err := photoRef(path, contentType)
	if err != nil {
		return syncproto.PhotoRef{}, err
	}
	err = e.db.Update(func(tx *bolt.Tx) error { return e.queuePhoto(tx, path, ref) })
	if err != nil {
		return syncproto.PhotoRef{}, fmt.Errorf("mobile: attach photo: %w", err)
	}
	return ref, nil
}

func (e *Engine) queuePhoto(tx *bolt.Tx, path string, ref syncproto.PhotoRef) error {
	b := tx.Bucket(bucketPhotos)
	var p photoEntry
	ok, err := getJSON(b, []byte(ref.SHA256), &p)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if ok {
		p.Path = abs // the same bytes, perhaps moved: keep the newest path
		return putJSON(b, []byte(ref.SHA256), p)
	}
	return putJSON(b, []byte(ref.SHA256), photoEntry{
		SHA256: ref.SHA256, Path: abs, Size: ref.Size, ContentType: ref.ContentType,
		State: PhotoQueued, AddedAt: e.now().UTC(),
	})
}

// KindAttachment is the record kind of a photo's metadata (docs/domain.md E22):
// fields owner_type, owner_id, kind ("photo"), mime, size_bytes, sha256,
// and file, the {sha256, size, content_type} object by which the server
// knows which photo the record expects (syncproto.PhotoRefs).
const KindAttachment = "attachment"

// AttachPhotoTo queues a photo and adds it to a record in one
// transaction, and returns the photo's reference:
//
//   - to an append-only collection of the record (a hazard's "events"),
//     as a photo_added event whose photos name the sha256;
//   - to a form's photo field (a list of attachment ids), as a new
//     attachment record (KindAttachment) whose id is appended to the
//     field.
//
// Record first, binary later: the records sync at the next push, the
// photo follows in chunks.
func (e *Engine) AttachPhotoTo(recordID uuid.UUID, field, path, contentType string) (syncproto.PhotoRef, error) {
	ref, err := photoRef(path, contentType)
	if err != nil {
		return syncproto.PhotoRef{}, err
	}
	err = e.db.Update(func(tx *bolt.Tx) error {
		if err := e.queuePhoto(tx, path, ref); err != nil {
			return err
		}
		r, err := getRecord(tx, bucketRecords, recordID)
		if err != nil {
			return err
		}
		if r == nil {
			return syncproto.Errorf(syncproto.ENOTFOUND, "No record %s on this phone.", recordID)
		}
		now := e.now().UTC()
		if _, isColl := r.Items[field]; isColl || field == "events" {
			itemID, err := e.newID()
			if err != nil {
				return err
			}
			_, _, author, _ := e.settings()
			data, err := syncproto.Marshal(map[string]any{
				"type": "photo_added", "occurred_at": now.Format(time.RFC3339), "actor_id": author, "actor_role": "inspector",
				"base_rev": r.Rev, "photos": []map[string]string{{"sha256": ref.SHA256, "phase": "evidence"}},
			})
			if err != nil {
				return err
			}
			_, err = e.write(tx, r, func(cur *syncproto.Record, w *syncproto.Writer) (*syncproto.Record, *syncproto.Record) {
				return syncproto.Append(cur, field, itemID.String(), data, w)
			})
			return err
		}
		var list []string
		if cur := r.Value(field); cur != nil && string(cur) != "null" {
			if err := json.Unmarshal(cur, &list); err != nil {
				return syncproto.FieldError("The field does not hold a list of photos.", map[string]string{field: "is not a list of attachment ids"})
			}
		}
		att, err := e.newAttachment(tx, r.Kind, r.ID, r.SchoolID, ref)
		if err != nil {
			return err
		}
		list = append(list, att.ID.String())
		_, err = e.save(tx, Draft{ID: recordID, Values: map[string]json.RawMessage{field: mustJSON(list)}})
		return err
	})
	if err != nil {
		return syncproto.PhotoRef{}, err
	}
	return ref, nil
}

// NewAttachment queues a photo and creates its attachment record for an
// owner record, which need not exist yet: a form that requires a photo
// (a hazard report) is saved with the attachment's id in its photo field,
// so the app makes the owner's id first (NewRecordID), then the
// attachment, then saves the owner. It returns the attachment's id.
func (e *Engine) NewAttachment(ownerKind string, ownerID uuid.UUID, schoolID, path, contentType string) (uuid.UUID, syncproto.PhotoRef, error) {
	sum, size, err := hashFile(path)
	if err != nil {
		return uuid.Nil, syncproto.PhotoRef{}, fmt.Errorf("mobile: attach photo: %w", err)
	}
	if contentType == "" {
		contentType = contentTypeOf(path)
	}
	ref := syncproto.PhotoRef{SHA256: sum, Size: size, ContentType: contentType}
	var id uuid.UUID
	err = e.db.Update(func(tx *bolt.Tx) error {
		if err := e.queuePhoto(tx, path, ref); err != nil {
			return err
		}
		att, err := e.newAttachment(tx, ownerKind, ownerID, schoolID, ref)
		if err == nil {
			id = att.ID
		}
		return err
	})
	return id, ref, err
}

// NewRecordID returns a new record id (a UUIDv7), for an owner whose
// attachments are made before it is saved.
func NewRecordID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func (e *Engine) newAttachment(tx *bolt.Tx, ownerKind string, ownerID uuid.UUID, schoolID string, ref syncproto.PhotoRef) (*syncproto.Record, error) {
	return e.save(tx, Draft{Kind: KindAttachment, SchoolID: schoolID, Values: map[string]json.RawMessage{
		"owner_type": jsonString(ownerKind), "owner_id": jsonString(ownerID.String()), "kind": jsonString("photo"),
		"mime": jsonString(ref.ContentType), "size_bytes": json.RawMessage(fmt.Sprint(ref.Size)), "sha256": jsonString(ref.SHA256),
		"taken_at": jsonString(e.now().UTC().Format(time.RFC3339)), "file": mustJSON(ref),
	}})
}

func jsonString(s string) json.RawMessage { return mustJSON(s) }

func mustJSON(v any) json.RawMessage {
	b, err := syncproto.Marshal(v)
	if err != nil {
		panic("mobile: " + err.Error())
	}
	return b
}

// PhotoInfo is the upload state of one photo.
type PhotoInfo struct {
	SHA256      string `json:"sha256"`
	Path        string `json:"path"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
	State       string `json:"state"` // PhotoQueued, PhotoUploading or PhotoDone
	Received    int64  `json:"received"`
	LastError   string `json:"last_error,omitempty"`
}

// Photos lists the photos the engine knows, by hash. A photo whose state
// is PhotoDone is on the server under its hash, and the app may delete
// its original.
func (e *Engine) Photos() ([]PhotoInfo, error) {
	var out []PhotoInfo
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPhotos).ForEach(func(k, v []byte) error {
			var p photoEntry
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			out = append(out, PhotoInfo{SHA256: p.SHA256, Path: p.Path, Size: p.Size, ContentType: p.ContentType,
				State: p.State, Received: p.Received, LastError: p.LastError})
			return nil
		})
	})
	return out, err
}

func (e *Engine) updatePhoto(sha string, f func(*photoEntry)) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPhotos)
		var p photoEntry
		ok, err := getJSON(b, []byte(sha), &p)
		if err != nil || !ok {
			return err
		}
		f(&p)
		return putJSON(b, []byte(sha), p)
	})
}

// uploadPhotos uploads every photo not yet done. A failure of one photo
// that the server explains (a refused photo, a missing original) is noted
// on the photo and the others go on; a network failure ends the sync.
func (e *Engine) uploadPhotos(ctx context.Context, t Transport, lim syncproto.Limits, rep *SyncReport, progress func(Progress)) error {
	var todo []photoEntry
	var total int64
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPhotos).ForEach(func(k, v []byte) error {
			var p photoEntry
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			if p.State != PhotoDone {
				todo = append(todo, p)
				total += p.Size
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("mobile: sync: photos: %w", err)
	}
	var done int64
	for _, p := range todo {
		sent, err := e.uploadPhoto(ctx, t, lim, p, func(n int64) { progress(Progress{Phase: PhasePhotos, Done: done + n, Total: total}) })
		done += p.Size
		rep.PhotoBytes += sent
		if err == nil {
			rep.Photos++
			progress(Progress{Phase: PhasePhotos, Done: done, Total: total})
			continue
		}
		msg := err.Error()
		e.updatePhoto(p.SHA256, func(q *photoEntry) { q.LastError = msg })
		if _, ok := err.(*photoError); !ok {
			return fmt.Errorf("mobile: sync: photo %s: %w", p.SHA256, err)
		}
		e.log.Warn("photo not uploaded", "sha256", p.SHA256, "err", err)
	}
	return nil
}

// photoError is a problem with one photo that does not stop the others.
type photoError struct{ err error }

func (p *photoError) Error() string { return p.err.Error() }
func (p *photoError) Unwrap() error { return p.err }

// uploadPhoto uploads one photo from wherever the server's copy ends and
// returns the bytes sent.
func (e *Engine) uploadPhoto(ctx context.Context, t Transport, lim syncproto.Limits, p photoEntry, progress func(int64)) (int64, error) {
	st, err := t.BlobStatus(ctx, p.SHA256)
	if err != nil && syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		return 0, err
	}
	if err != nil {
		st = BlobStatus{State: BlobMissing}
	}
	if st.State == BlobComplete {
		return 0, e.photoDone(p.SHA256, p.Size)
	}
	// The original must still be the photo the record names.
	sum, size, err := hashFile(p.Path)
	if err != nil || sum != p.SHA256 || size != p.Size {
		if err == nil {
			err = fmt.Errorf("the file at %s changed since it was attached", p.Path)
		}
		return 0, &photoError{err}
	}
	f, err := os.Open(p.Path)
	if err != nil {
		return 0, &photoError{err}
	}
	defer f.Close()
	chunk := lim.ChunkBytes
	var sent int64
	if st.State != BlobPartial && st.Received == 0 && p.Size <= chunk {
		data, err := io.ReadAll(f)
		if err != nil {
			return 0, &photoError{err}
		}
		st, err = t.PutBlob(ctx, p.SHA256, p.ContentType, data)
		if err != nil {
			return 0, classifyPhoto(err)
		}
		sent = int64(len(data))
	} else {
		off := min(st.Received, p.Size)
		buf := make([]byte, chunk)
		for off < p.Size {
			n, err := f.ReadAt(buf[:min(chunk, p.Size-off)], off)
			if err != nil && err != io.EOF {
				return sent, &photoError{err}
			}
			st, err = t.PutChunk(ctx, p.SHA256, off, buf[:n])
			if err != nil {
				return sent, classifyPhoto(err)
			}
			sent += int64(n)
			next := off + int64(n)
			if st.Received > 0 && st.Received <= p.Size {
				next = st.Received // the server is the judge of what it holds
			}
			off = next
			received := off
			if err := e.updatePhoto(p.SHA256, func(q *photoEntry) { q.State, q.Received = PhotoUploading, received }); err != nil {
				return sent, err
			}
			progress(off)
		}
		st, err = t.FinishBlob(ctx, p.SHA256, p.Size, p.ContentType)
		if err != nil {
			return sent, classifyPhoto(err)
		}
	}
	if st.State != BlobComplete {
		return sent, &photoError{fmt.Errorf("the server holds %d of %d bytes after the upload", st.Received, p.Size)}
	}
	return sent, e.photoDone(p.SHA256, p.Size)
}

// classifyPhoto makes a server's refusal a photoError (this photo only)
// and leaves network and availability errors as they are (stop the sync).
func classifyPhoto(err error) error {
	switch syncproto.ErrorCode(err) {
	case syncproto.EINVALID, syncproto.EFORBIDDEN, syncproto.ETOOLARGE, syncproto.EUNSUPPORTED, syncproto.ECONFLICT, syncproto.ENOTFOUND:
		return &photoError{err}
	}
	return err
}

func (e *Engine) photoDone(sha string, size int64) error {
	return e.updatePhoto(sha, func(q *photoEntry) {
		q.State, q.Received, q.LastError, q.DoneAt = PhotoDone, size, "", e.now().UTC()
	})
}

// photoRef hashes the file at path and returns its reference; an empty
// contentType is guessed from the name or the bytes.
func photoRef(path, contentType string) (syncproto.PhotoRef, error) {
	sum, size, err := hashFile(path)
	if err != nil {
		return syncproto.PhotoRef{}, fmt.Errorf("mobile: attach photo: %w", err)
	}
	if contentType == "" {
		contentType = contentTypeOf(path)
	}
	return syncproto.PhotoRef{SHA256: sum, Size: size, ContentType: contentType}, nil
}
