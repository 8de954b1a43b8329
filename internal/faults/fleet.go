package faults

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// fleet is a county's phones syncing with one server address (a
// fieldsyncd or the proxy in front of several), and what each of them
// wrote, for the oracle.
type fleet struct {
	t        *testing.T
	url      string
	admin    *mobiletest.Admin
	school   string
	phones   []*phone
	observer *mobiletest.Phone
	// photo sizes: JPEG sides in pixels, and one photo every photoEvery
	// rounds of a phone.
	photoMin, photoMax, photoEvery int

	rounds   atomic.Int64 // rounds done by all phones
	stop     atomic.Bool  // set: phones stop after their current round
	mu       sync.Mutex
	attempts []attempt
	errs     []string // failures of the workload itself (not of syncs)
}

// phone is one simulated phone and its own record of its writes.
type phone struct {
	*mobiletest.Phone
	rng    *rand.Rand
	dir    string
	edits  []mobiletest.Edit
	items  map[uuid.UUID][]string
	nphoto int
	notes  map[string]bool // every event note written (unique)
}

// attempt is one Sync call of one phone.
type attempt struct {
	phone      string
	start, end time.Time
	err        error
	pushed     int // changes sent
	acked      int // changes answered (applied, merged, conflict, duplicate)
	batches    int // push batches answered
	photos     int // photos completed
}

func js(v any) json.RawMessage {
	b, err := syncproto.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// newFleet enrolls n phones (each its own inspector, all assigned the same
// school) and an observer, through the admin API at url.
func newFleet(t *testing.T, url, adminToken string, n int, seed uint64, client *http.Client) *fleet {
	t.Helper()
	f := &fleet{t: t, url: url, admin: &mobiletest.Admin{URL: url, Token: adminToken}, school: uuid.NewString(),
		photoMin: 24, photoMax: 96, photoEvery: 3}
	dir := t.TempDir()
	open := func(name string) *mobiletest.Phone {
		var code string
		err := retryFor(t.Context(), 60*time.Second, func() error {
			var err error
			_, code, err = f.admin.Inspector(t.Context(), "督学 "+name, []string{f.school})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		p := mobiletest.OpenPhone(t, name, filepath.Join(dir, name+".db"), mobile.Options{
			Validator: mobile.FormsValidator(nil), NoSync: true,
			HTTPClient: client,
		})
		err = retryFor(t.Context(), 60*time.Second, func() error {
			_, err := p.E.Enroll(t.Context(), url, code, name)
			return err
		})
		if err != nil {
			t.Fatalf("%s: enroll: %v", name, err)
		}
		return p
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	f.observer = open("observer")
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		pdir := filepath.Join(dir, name)
		os.MkdirAll(pdir, 0o755)
		f.phones = append(f.phones, &phone{Phone: open(name), rng: rand.New(rand.NewPCG(seed, uint64(i+1))), dir: pdir,
			items: map[uuid.UUID][]string{}, notes: map[string]bool{}})
	}
	return f
}

// retryFor runs op until it succeeds or d has passed, pausing 250 ms.
func retryFor(ctx context.Context, d time.Duration, op func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := op()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (f *fleet) fail(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, a...))
}

// track records the phone's own version of a field it just wrote.
func (p *phone) track(r *syncproto.Record, field string) error {
	for _, v := range r.Fields[field] {
		if v.HLC.Replica == p.E.DeviceID() {
			p.edits = append(p.edits, mobiletest.Edit{Record: r.ID, Field: field, V: v})
			return nil
		}
	}
	return fmt.Errorf("%s: own version of %s.%s not found", p.Name, r.ID, field)
}

// newPhoto writes a synthetic JPEG into the phone's folder.
func (f *fleet) newPhoto(p *phone) (string, error) {
	p.nphoto++
	w := f.photoMin + p.rng.IntN(f.photoMax-f.photoMin+1)
	h := f.photoMin + p.rng.IntN(f.photoMax-f.photoMin+1)
	b, err := mobiletest.JPEG(p.rng, w, h, 90)
	if err != nil {
		return "", err
	}
	path := filepath.Join(p.dir, fmt.Sprintf("photo-%d.jpg", p.nphoto))
	return path, os.WriteFile(path, b, 0o644)
}

// newHazard creates a hazard with a photo and tracks its fields.
func (f *fleet) newHazard(p *phone, title string) error {
	id := mobile.NewRecordID()
	path, err := f.newPhoto(p)
	if err != nil {
		return err
	}
	att, _, err := p.E.NewAttachment("hazard", id, f.school, path, "image/jpeg")
	if err != nil {
		return err
	}
	r, err := p.E.Save(mobile.Draft{ID: id, Kind: "hazard", SchoolID: f.school, FormID: "hazard.report", FormVersion: 1,
		Values: map[string]json.RawMessage{
			"school_id": js(f.school), "source": js("inspector_visit"), "category": js("fire"), "location_desc": js("教学楼二层"),
			"title": js(title), "description": js("灭火器压力不足"), "severity": js("medium"), "photo_ids": js([]string{att.String()}),
		}})
	if err != nil {
		return fmt.Errorf("%s: new hazard: %w", p.Name, err)
	}
	for field := range r.Fields {
		if err := p.track(r, field); err != nil {
			return err
		}
	}
	return nil
}

var (
	editFields = []string{"title", "severity", "description", "location_desc"}
	editValues = map[string][]string{
		"title":         {"灭火器过期", "电线裸露", "楼梯扶手松动", "宿舍门锁损坏"},
		"severity":      {"low", "medium", "high"},
		"description":   {"复查：仍未整改", "已部分整改", "学校称已报修", "现场照片见附件"},
		"location_desc": {"教学楼二层", "食堂后门", "宿舍三楼", "操场东侧"},
	}
)

// work makes one round of offline work on a phone: edits of hazards that
// every phone shares (so that pushes of one record from several phones
// race), an event, now and then a new hazard or an evidence photo.
func (f *fleet) work(p *phone, round int) error {
	recs, err := p.E.Records(mobile.Filter{Kind: "hazard"})
	if err != nil {
		return err
	}
	if len(recs) == 0 || round%f.photoEvery == 0 {
		if err := f.newHazard(p, fmt.Sprintf("新隐患 %s-%d", p.Name, round)); err != nil {
			return err
		}
		if recs, err = p.E.Records(mobile.Filter{Kind: "hazard"}); err != nil {
			return err
		}
	}
	for j := range 1 + p.rng.IntN(3) {
		r := recs[p.rng.IntN(len(recs))]
		field := editFields[p.rng.IntN(len(editFields))]
		vals := editValues[field]
		v := vals[p.rng.IntN(len(vals))]
		if field != "severity" {
			v = fmt.Sprintf("%s（%s-%d-%d）", v, p.Name, round, j)
		}
		if string(r.Value(field)) == string(js(v)) {
			continue
		}
		r2, err := p.E.Save(mobile.Draft{ID: r.ID, Values: map[string]json.RawMessage{field: js(v)}})
		if err != nil {
			return fmt.Errorf("%s: edit: %w", p.Name, err)
		}
		if err := p.track(r2, field); err != nil {
			return err
		}
	}
	r := recs[p.rng.IntN(len(recs))]
	note := fmt.Sprintf("%s 第 %d 轮", p.Name, round)
	id, err := p.E.Append(r.ID, "events", js(map[string]any{"type": "note_added", "note": note,
		"actor_role": "inspector", "occurred_at": "2026-11-03T09:00:00+08:00", "base_rev": r.Rev}))
	if err != nil {
		return err
	}
	p.items[r.ID] = append(p.items[r.ID], id)
	p.notes[note] = true
	if round%f.photoEvery == 1 {
		path, err := f.newPhoto(p)
		if err != nil {
			return err
		}
		if _, err := p.E.AttachPhotoTo(r.ID, "events", path, "image/jpeg"); err != nil {
			return err
		}
	}
	return nil
}

// sync makes one Sync attempt and records it.
func (f *fleet) sync(ctx context.Context, p *phone) error {
	a := attempt{phone: p.Name, start: time.Now()}
	rep, err := p.E.Sync(ctx, nil)
	a.end, a.err = time.Now(), err
	a.pushed, a.batches = rep.Pushed, rep.Batches
	a.acked = rep.Applied + rep.Merged + rep.Conflicts + rep.Duplicates
	a.photos = rep.Photos
	f.mu.Lock()
	f.attempts = append(f.attempts, a)
	f.mu.Unlock()
	return err
}

// backoff is how long a phone waits after k failed syncs in a row:
// doubling from 200 ms up to 3 s, with ±25 % jitter.
func backoff(rng *rand.Rand, k int) time.Duration {
	d := 200 * time.Millisecond << min(k, 4)
	d = min(d, 3*time.Second)
	return d*3/4 + time.Duration(rng.Int64N(int64(d/2)+1))
}

// run runs up to rounds rounds on every phone at once, until stop is set:
// each round some offline work, then one sync; after a failed sync the
// phone backs off before its next round (its edits wait in the outbox).
// It returns when every phone is done.
func (f *fleet) run(ctx context.Context, rounds int) {
	var wg sync.WaitGroup
	for _, p := range f.phones {
		wg.Go(func() {
			fails := 0
			for i := range rounds {
				if ctx.Err() != nil || f.stop.Load() {
					return
				}
				if err := f.work(p, i); err != nil {
					f.fail("%s round %d: %v", p.Name, i, err)
					return
				}
				if err := f.sync(ctx, p); err != nil {
					fails++
					time.Sleep(backoff(p.rng, fails))
				} else {
					fails = 0
				}
				f.rounds.Add(1)
			}
		})
	}
	wg.Wait()
}

// waitRounds blocks until the phones have done n rounds in all.
func (f *fleet) waitRounds(ctx context.Context, n int64) {
	for f.rounds.Load() < n && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// syncUntil syncs a phone until a sync succeeds or d has passed, backing
// off between attempts.
func (f *fleet) syncUntil(ctx context.Context, p *mobiletest.Phone, rng *rand.Rand, d time.Duration) error {
	deadline := time.Now().Add(d)
	fails := 0
	for {
		err := f.sync(ctx, &phone{Phone: p})
		if err == nil {
			return nil
		}
		fails++
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(backoff(rng, fails))
	}
}

// settle syncs every phone twice round (a join then reaches all) and the
// observer once, each until it succeeds.
func (f *fleet) settle(ctx context.Context, d time.Duration) error {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2 {
		for _, p := range f.phones {
			if err := f.syncUntil(ctx, p.Phone, rng, d); err != nil {
				return fmt.Errorf("%s did not sync after the faults: %w", p.Name, err)
			}
		}
	}
	if err := f.syncUntil(ctx, f.observer, rng, d); err != nil {
		return fmt.Errorf("the observer did not sync: %w", err)
	}
	return nil
}

// outcome is what the oracle found.
type outcome struct {
	changes    int // field versions and events the phones wrote (all acknowledged in the end)
	photos     int
	lost       []string
	duplicated []string
	diverged   []string
}

// check is the oracle: the observer's records (the server's state, pulled
// from scratch) must hold every field version and event any phone wrote,
// none twice; every phone must hold what the observer holds, with nothing
// left to send; and, with photos set, every photo must be complete on the
// server, its bytes matching its sha256.
func (f *fleet) check(ctx context.Context, photos bool) outcome {
	t := f.t
	var o outcome
	want := mobiletest.RecordsOf(t, f.observer)
	var edits []mobiletest.Edit
	items := map[uuid.UUID][]string{}
	for _, p := range f.phones {
		edits = append(edits, p.edits...)
		for id, ids := range p.items {
			items[id] = append(items[id], ids...)
			o.changes += len(ids)
		}
	}
	o.changes += len(edits)
	o.lost = mobiletest.LostEdits(want, edits, items)
	o.duplicated = duplicates(want)
	for _, p := range f.phones {
		o.diverged = append(o.diverged, mobiletest.Divergence(t, want, p.Phone)...)
	}
	shas := map[string]bool{}
	for _, p := range f.phones {
		photos, err := p.E.Photos()
		if err != nil {
			t.Fatal(err)
		}
		for _, ph := range photos {
			shas[ph.SHA256] = true
		}
	}
	o.photos = len(shas)
	if !photos {
		return o
	}
	for sha := range shas {
		if err := f.verifyPhoto(ctx, sha); err != nil {
			o.lost = append(o.lost, fmt.Sprintf("photo %s: %v", sha, err))
		}
	}
	return o
}

// duplicates finds a change present twice in the server's state: an event
// note (unique per phone and round) on two items, two versions of a field
// with one stamp, a conflict revision twice.
func duplicates(recs map[uuid.UUID]*syncproto.Record) []string {
	var out []string
	for _, r := range recs {
		notes := map[string]int{}
		for _, it := range r.Items["events"] {
			var ev struct {
				Type string `json:"type"`
				Note string `json:"note"`
			}
			if json.Unmarshal(it.Data, &ev) == nil && ev.Type == "note_added" && ev.Note != "" {
				notes[ev.Note]++
			}
		}
		for n, k := range notes {
			if k > 1 {
				out = append(out, fmt.Sprintf("record %s: event %q %d times", r.ID, n, k))
			}
		}
		for field, vs := range r.Fields {
			seen := map[syncproto.HLC]bool{}
			for _, v := range vs {
				if seen[v.HLC] {
					out = append(out, fmt.Sprintf("record %s: field %s holds version %v twice", r.ID, field, v.HLC))
				}
				seen[v.HLC] = true
			}
		}
		seen := map[string]bool{}
		for _, c := range r.Conflicts {
			if seen[c.ID] {
				out = append(out, fmt.Sprintf("record %s: conflict revision %s twice", r.ID, c.ID))
			}
			seen[c.ID] = true
		}
	}
	sort.Strings(out)
	return out
}

// verifyPhoto fetches a photo through a presigned link from the server
// and compares its bytes with its sha256.
func (f *fleet) verifyPhoto(ctx context.Context, sha string) error {
	var last error
	for range 5 {
		if last = f.fetchPhoto(ctx, sha); last == nil || errors.Is(last, errCorrupt) {
			return last
		}
		time.Sleep(500 * time.Millisecond)
	}
	return last
}

var errCorrupt = errors.New("the bytes do not match the sha256")

func (f *fleet) fetchPhoto(ctx context.Context, sha string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := client.New(f.url, f.admin.Token)
	link, err := c.BlobURL(ctx, sha)
	if err != nil {
		// Say what the server holds, to tell a photo that never arrived
		// from one stored but not shown through its records.
		st, serr := c.BlobStatus(ctx, sha)
		return fmt.Errorf("link: %w (the server's upload state: %q, %d bytes, %v)", err, st.State, st.Received, serr)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, link.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get: %s", resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("%w: got %s", errCorrupt, got)
	}
	return nil
}

// donePhotos returns the photos the phones hold as uploaded.
func (f *fleet) donePhotos() []string {
	var out []string
	for _, p := range f.phones {
		photos, _ := p.E.Photos()
		for _, ph := range photos {
			if ph.State == mobile.PhotoDone {
				out = append(out, ph.SHA256)
			}
		}
	}
	return out
}

// stats sums the sync attempts.
func (f *fleet) stats() (attempts, failed, batches, acked int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.attempts {
		attempts++
		if a.err != nil {
			failed++
		}
		batches += a.batches
		acked += a.acked
	}
	return
}

// recovery returns how long after up the first sync that started at or
// after down succeeded (0 if one succeeded before up: the phones were
// served throughout), and false if none did.
func (f *fleet) recovery(down, up time.Time) (time.Duration, bool) {
	return f.recoveryOf(down, up, func(attempt) bool { return true })
}

// recoveryOf is recovery counting only the syncs that ok accepts.
func (f *fleet) recoveryOf(down, up time.Time, ok func(attempt) bool) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var first time.Time
	for _, a := range f.attempts {
		if a.err == nil && ok(a) && !a.start.Before(down) && (first.IsZero() || a.end.Before(first)) {
			first = a.end
		}
	}
	if first.IsZero() {
		return 0, false
	}
	return max(0, first.Sub(up)), true
}

// failedBetween counts failed syncs that ended in [from, to].
func (f *fleet) failedBetween(from, to time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.attempts {
		if a.err != nil && !a.end.Before(from) && !a.end.After(to) {
			n++
		}
	}
	return n
}

// ackedBetween counts changes acknowledged by syncs that started in
// [from, to], failed or not (a sync that pushed and then could not upload
// a photo has still had its records accepted).
func (f *fleet) ackedBetween(from, to time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.attempts {
		if !a.start.Before(from) && !a.start.After(to) {
			n += a.acked
		}
	}
	return n
}
