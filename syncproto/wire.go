package syncproto

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/google/uuid"
)

// ProtocolVersion is the version of the wire protocol this package
// speaks. It appears in the path (/v1/…) and as "protocol" in every
// request and response body; a server refuses other versions with
// EPROTOCOL and a readable message.
const ProtocolVersion = 1

// Change is one entry of a phone's outbox: a delta of one record, made by
// one local edit (or several folded together by Merge), identified by an
// op id the phone made when the edit entered the outbox.
type Change struct {
	OpID   uuid.UUID `json:"op_id"`
	Record *Record   `json:"record"`
	// Base is the record version the phone held when it made the change.
	Base Vector `json:"base"`
}

// Digest returns a hex sha256 of the change's canonical JSON: the server
// stores it with the op id and refuses the same op id with another digest
// (EOPREUSED), as ODK Central and KoboToolbox refuse a reused instance id.
func (c Change) Digest() string {
	d, _ := c.DigestSize()
	return d
}

// DigestSize returns the change's Digest and the size of the canonical
// JSON it is taken over (0 when the change does not encode): a bound on
// the size of the change's record, which the server uses to skip encoding
// a small record just to measure it.
func (c Change) DigestSize() (string, int) {
	b, err := marshal(c)
	if err != nil {
		return "", 0
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), len(b)
}

// PushRequest is the body of POST /v1/sync/push.
type PushRequest struct {
	Protocol int       `json:"protocol"`
	DeviceID uuid.UUID `json:"device_id"`
	BatchID  uuid.UUID `json:"batch_id"`
	Changes  []Change  `json:"changes"`
}

// Result is the outcome of one change, in request order.
type Result struct {
	OpID   uuid.UUID `json:"op_id"`
	Status string    `json:"status"` // StatusApplied, StatusMerged, StatusConflict, StatusDuplicate, StatusRejected
	// Rev is the record's server revision after the change (0 when rejected).
	Rev int64 `json:"rev,omitempty"`
	// Conflicts names the fields the change put in conflict.
	Conflicts []string `json:"conflicts,omitempty"`
	// Error explains a rejection; Error.Fields holds field-level messages.
	Error *Error `json:"error,omitempty"`
}

// PushResponse is the answer to a PushRequest: one Result per change, in
// the order of the request.
type PushResponse struct {
	Protocol   int       `json:"protocol"`
	Results    []Result  `json:"results"`
	ServerTime time.Time `json:"server_time"`
}

// PullRequest is the body of POST /v1/sync/pull. An empty Cursor starts
// from the beginning. Scope narrows the pull to some of the scopes the
// user may see (school ids, or "ref" for reference data), for a phone that
// refreshes one school before a visit; empty means all of them. Limit 0
// means the server's default page (Limits.MaxPull caps it).
type PullRequest struct {
	Protocol int      `json:"protocol"`
	Cursor   string   `json:"cursor,omitempty"`
	Scope    []string `json:"scope,omitempty"`
	Limit    int      `json:"limit,omitempty"`
}

// MaxScopes bounds PullRequest.Scope.
const MaxScopes = 1000

// PullResponse carries record states in the order the server logged them.
// A record may appear more than once; the phone merges each into its copy,
// so order and repetition do not matter for the result. When More is true
// the phone pulls again at once with Cursor.
type PullResponse struct {
	Protocol   int       `json:"protocol"`
	Records    []*Record `json:"records"`
	Cursor     string    `json:"cursor"`
	More       bool      `json:"more"`
	ServerTime time.Time `json:"server_time"`
}

// StartOver is the detail of an ESTALE answer to a pull: the cursor is
// from another epoch (the server's log was rebuilt or restored) or older
// than the horizon below which deleted records were forgotten. The phone
// then pulls again from an empty cursor, keeps its unsynced local edits,
// and drops server records it did not receive again.
const StartOver = "Start over: pull again from an empty cursor."

// StartOverError is the ESTALE error a server returns for a cursor of an
// unknown epoch or older than the tombstone horizon.
func StartOverError() *Error { return &Error{Code: ESTALE, Message: StartOver} }

// ErrorResponse is the body of every error answer (any HTTP status other
// than 2xx): {"error":{"code":…,"message":…,"fields":{…}}}.
type ErrorResponse struct {
	Error *Error `json:"error"`
}

// Limits are what the server accepts, advertised by GET /v1/sync/info so a
// phone sizes its batches before it is refused.
type Limits struct {
	MaxChanges     int   `json:"max_changes"`      // changes per push
	MaxBytes       int64 `json:"max_bytes"`        // request body bytes
	MaxPull        int   `json:"max_pull"`         // records per pull response
	ChunkBytes     int64 `json:"chunk_bytes"`      // default photo chunk size
	MaxBlobSize    int64 `json:"max_blob_size"`    // largest photo accepted
	MaxRecordBytes int64 `json:"max_record_bytes"` // a record's state as stored (its canonical JSON), every revision
	MaxPullBytes   int64 `json:"max_pull_bytes"`   // records' JSON per pull response (at least one record is sent)
}

// Info is the body of GET /v1/sync/info.
type Info struct {
	Protocol   int       `json:"protocol"`
	Epoch      uuid.UUID `json:"epoch"`
	Limits     Limits    `json:"limits"`
	ServerTime time.Time `json:"server_time"`
}

// Cursor is a phone's position in the server's change log: the server's
// log epoch and, per scope (a school, or reference data), the last
// sequence number the phone has received. Phones treat it as an opaque
// string (Encode); only the server reads it.
type Cursor struct {
	Epoch uuid.UUID        `json:"e"`
	Pos   map[string]int64 `json:"p,omitempty"`
	// Next is the scope the next page starts at, when a page stopped
	// before reading every scope (More): a phone catching up on many
	// schools then reads each scope once, not every scope before it again
	// on every page. Empty: the first scope.
	Next string `json:"n,omitempty"`
}

// Encode returns the opaque text form of the cursor.
func (c Cursor) Encode() string {
	b, _ := marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses the text form made by Encode. The empty string is
// the zero cursor (start from the beginning).
func DecodeCursor(s string) (Cursor, error) {
	// A cursor this server could not have made (corrupted on the phone,
	// forged, or from a newer build during an upgrade) is ESTALE, not
	// EINVALID: the phone pulls again from an empty cursor instead of
	// failing every sync until it is reinstalled.
	notOurs := func() *Error {
		return &Error{Code: ESTALE, Message: "The cursor is not one this server made. " + StartOver}
	}
	if s == "" {
		return Cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, notOurs()
	}
	var c Cursor
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Cursor{}, notOurs()
	}
	if _, err := d.Token(); err != io.EOF {
		return Cursor{}, notOurs()
	}
	for k, v := range c.Pos {
		if k == "" || v < 0 {
			return Cursor{}, notOurs()
		}
	}
	return c, nil
}

// Scopes returns the cursor's scopes, sorted.
func (c Cursor) Scopes() []string {
	out := make([]string, 0, len(c.Pos))
	for k := range c.Pos {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DecodePush decodes and checks a push request body: protocol version,
// ids, and every change's record (Validate). A change that cannot be
// decoded or whose record is invalid is not an error of the whole request:
// its problems are returned in rejected, indexed like req.Changes (which
// then holds whatever op_id could be read), and the rest of the batch goes
// on, so one bad record never blocks a phone's outbox. A body that is not
// a JSON object of the right shape, a wrong protocol, or missing device or
// batch ids fail the whole request.
func DecodePush(body []byte) (req PushRequest, rejected map[int]*Error, err error) {
	var raw struct {
		Protocol int               `json:"protocol"`
		DeviceID uuid.UUID         `json:"device_id"`
		BatchID  uuid.UUID         `json:"batch_id"`
		Changes  []json.RawMessage `json:"changes"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&raw); err != nil {
		return PushRequest{}, nil, Errorf(EINVALID, "The push body is not valid JSON for the sync protocol: %v.", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return PushRequest{}, nil, Errorf(EINVALID, "The push body has data after its JSON object.")
	}
	if raw.Protocol != ProtocolVersion {
		return PushRequest{}, nil, Errorf(EPROTOCOL, "Protocol version %d is not supported; this server speaks %d. Update the app.", raw.Protocol, ProtocolVersion)
	}
	if raw.DeviceID == uuid.Nil || raw.BatchID == uuid.Nil {
		return PushRequest{}, nil, Errorf(EINVALID, "device_id and batch_id are required.")
	}
	req = PushRequest{Protocol: raw.Protocol, DeviceID: raw.DeviceID, BatchID: raw.BatchID}
	if raw.Changes != nil {
		req.Changes = make([]Change, len(raw.Changes))
	}
	rejected = map[int]*Error{}
	seen := map[uuid.UUID]bool{}
	for i, rc := range raw.Changes {
		var c Change
		if err := json.Unmarshal(rc, &c); err != nil {
			var id struct {
				OpID uuid.UUID `json:"op_id"`
			}
			_ = json.Unmarshal(rc, &id)
			req.Changes[i] = Change{OpID: id.OpID}
			rejected[i] = Errorf(EINVALID, "Change %d is malformed: %v.", i, err)
			if id.OpID != uuid.Nil {
				seen[id.OpID] = true
			}
			continue
		}
		req.Changes[i] = c
		switch {
		case c.OpID == uuid.Nil:
			rejected[i] = Errorf(EINVALID, "Change %d has no op_id.", i)
		case seen[c.OpID]:
			rejected[i] = Errorf(EINVALID, "Op %s appears twice in the batch.", c.OpID)
		case c.Record == nil:
			rejected[i] = Errorf(EINVALID, "Change %d has no record.", i)
		default:
			if err := c.Record.Validate(); err != nil {
				rejected[i] = err.(*Error)
			}
		}
		seen[c.OpID] = true
	}
	return req, rejected, nil
}

// DecodePull decodes and checks a pull request body.
func DecodePull(body []byte) (PullRequest, Cursor, error) {
	var req PullRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return PullRequest{}, Cursor{}, Errorf(EINVALID, "The pull body is not valid JSON for the sync protocol: %v.", err)
	}
	if req.Protocol != ProtocolVersion {
		return PullRequest{}, Cursor{}, Errorf(EPROTOCOL, "Protocol version %d is not supported; this server speaks %d. Update the app.", req.Protocol, ProtocolVersion)
	}
	if req.Limit < 0 {
		return PullRequest{}, Cursor{}, Errorf(EINVALID, "limit must not be negative.")
	}
	if len(req.Scope) > MaxScopes {
		return PullRequest{}, Cursor{}, Errorf(EINVALID, "At most %d scopes in one pull.", MaxScopes)
	}
	if len(req.Scope) == 0 {
		req.Scope = nil // "scope": [] means the same as no scope
	}
	seen := map[string]bool{}
	for _, sc := range req.Scope {
		if sc == "" || seen[sc] {
			return PullRequest{}, Cursor{}, Errorf(EINVALID, "scope must list distinct, non-empty scopes.")
		}
		seen[sc] = true
	}
	cur, err := DecodeCursor(req.Cursor)
	if err != nil {
		return PullRequest{}, Cursor{}, err
	}
	return req, cur, nil
}

// PhotoRef is a reference to a photo by content hash, found in a record's
// field values or items: any JSON object with a "sha256" member of 64 hex
// digits.
type PhotoRef struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size,omitempty"`
	ContentType string `json:"content_type,omitempty"`
}

// PhotoRefs returns the distinct photos a record refers to, sorted by hash,
// from the winning and concurrent versions of every field and from every
// item: the photos the server expects to receive for this record.
func PhotoRefs(r *Record) []PhotoRef {
	found := map[string]PhotoRef{}
	var walk func(x any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			if s, ok := t["sha256"].(string); ok && isSHA256(s) {
				ref := found[s]
				ref.SHA256 = s
				if n, ok := t["size"].(json.Number); ok {
					if v, err := n.Int64(); err == nil {
						ref.Size = v
					}
				}
				if ct, ok := t["content_type"].(string); ok {
					ref.ContentType = ct
				}
				found[s] = ref
			}
			for _, v := range t {
				walk(v)
			}
		case []any:
			for _, v := range t {
				walk(v)
			}
		}
	}
	decode := func(raw json.RawMessage) {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var x any
		if d.Decode(&x) == nil {
			walk(x)
		}
	}
	for _, f := range r.Fields {
		for _, v := range f {
			decode(v.Value)
		}
	}
	for _, items := range r.Items {
		for _, it := range items {
			decode(it.Data)
		}
	}
	out := make([]PhotoRef, 0, len(found))
	for _, ref := range found {
		out = append(out, ref)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SHA256 < out[j].SHA256 })
	return out
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == fmt.Sprintf("%x", mustHex(s))
}

func mustHex(s string) []byte { b, _ := hex.DecodeString(s); return b }
