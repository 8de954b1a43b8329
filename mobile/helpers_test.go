package mobile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// phone is a test phone: an engine on a file, a fault-injecting transport
// to the fake server, and what is needed to reopen it after a "kill".
type phone struct {
	tb     testing.TB
	name   string
	path   string
	srv    *mobiletest.Server
	faulty *mobiletest.Faulty
	opts   mobile.Options
	e      *mobile.Engine
	user   string
}

func newPhone(tb testing.TB, srv *mobiletest.Server, name string) *phone {
	tb.Helper()
	p := &phone{tb: tb, name: name, path: filepath.Join(tb.TempDir(), name+".db"), srv: srv, user: "user-" + name}
	p.faulty = &mobiletest.Faulty{}
	// A "kill" closes the file without losing the OS's page cache, so
	// fsync (which guards against power cuts) only slows the tests down.
	p.opts = mobile.Options{Transport: p.faulty, NoSync: true}
	p.open()
	tok := "fsd_" + name + "_" + p.e.DeviceID().String()
	srv.AddDevice(tok, p.e.DeviceID(), p.user)
	p.faulty.T = srv.Transport(tok)
	if err := p.e.SetServer("", tok, p.user); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.e.Close() })
	return p
}

func (p *phone) open() {
	p.tb.Helper()
	e, err := mobile.Open(p.path, p.opts)
	if err != nil {
		p.tb.Fatal(err)
	}
	p.e = e
}

// kill closes the engine as a dying process would leave it (everything
// not committed is gone) and opens the file again.
func (p *phone) kill() {
	p.tb.Helper()
	p.e.Close()
	p.open()
}

// sync syncs without faults and fails the test on error.
func (p *phone) sync() mobile.SyncReport {
	p.tb.Helper()
	p.faulty.Fault = nil
	rep, err := p.e.Sync(context.Background(), nil)
	if err != nil {
		p.tb.Fatalf("%s: sync: %v", p.name, err)
	}
	return rep
}

func (p *phone) save(d mobile.Draft) *syncproto.Record {
	p.tb.Helper()
	r, err := p.e.Save(d)
	if err != nil {
		p.tb.Fatalf("%s: save: %v", p.name, err)
	}
	return r
}

func js(v any) json.RawMessage {
	b, err := syncproto.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func vals(kv ...any) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = js(kv[i+1])
	}
	return m
}

const schoolA = "0192b000-0000-7000-8000-000000000101"

// hazardDraft is a new hazard with a title.
func hazardDraft(title string) mobile.Draft {
	return mobile.Draft{Kind: "hazard", SchoolID: schoolA, FormID: "hazard.report", FormVersion: 1,
		Values: vals("title", title, "category", "fire", "severity", "medium", "location_desc", "教学楼二层", "description", "灭火器过期")}
}

// writeJPEG writes a small synthetic JPEG (different for each seed) and
// returns its path.
func writeJPEG(tb testing.TB, dir string, seed uint64, w, h int) string {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(r.IntN(256)), uint8(x * 255 / w), uint8(y * 255 / h), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("photo-%d.jpg", seed))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// assertConverged checks that every phone holds exactly the server's
// records, that no op was applied twice, and that each phone's outbox is
// empty and its photos done and on the server.
func assertConverged(tb testing.TB, srv *mobiletest.Server, phones ...*phone) {
	tb.Helper()
	want := srv.Records()
	for _, p := range phones {
		got, err := p.e.Records(mobile.Filter{Deleted: true})
		if err != nil {
			tb.Fatal(err)
		}
		if len(got) != len(want) {
			tb.Errorf("%s holds %d records, server %d", p.name, len(got), len(want))
		}
		for _, r := range got {
			if w := want[r.ID]; w == nil || !w.Equal(r) {
				a, _ := syncproto.Marshal(r)
				b, _ := syncproto.Marshal(w)
				tb.Errorf("%s: record %s differs from the server's:\nphone  %s\nserver %s", p.name, r.ID, a, b)
			}
		}
		st, err := p.e.Status()
		if err != nil {
			tb.Fatal(err)
		}
		if st.Outbox != 0 || st.Photos != 0 {
			tb.Errorf("%s: outbox %d, photos left %d after sync", p.name, st.Outbox, st.Photos)
		}
		photos, _ := p.e.Photos()
		for _, ph := range photos {
			data, ok := srv.Blob(ph.SHA256)
			if !ok {
				tb.Errorf("%s: photo %s not on the server", p.name, ph.SHA256)
				continue
			}
			if sum, _, _ := hashBytes(data); sum != ph.SHA256 {
				tb.Errorf("%s: photo %s stored with hash %s", p.name, ph.SHA256, sum)
			}
		}
	}
	for op, n := range srv.Applied() {
		if n != 1 {
			tb.Errorf("op %s applied %d times", op, n)
		}
	}
}

var _ = time.Second
var _ = uuid.Nil

// photosOf returns the photos of a record's photo field: the references
// held by the attachment records its ids name.
func photosOf(recs map[uuid.UUID]*syncproto.Record, r *syncproto.Record, field string) []syncproto.PhotoRef {
	var ids []string
	json.Unmarshal(r.Value(field), &ids)
	var out []syncproto.PhotoRef
	for _, s := range ids {
		if a := recs[uuid.MustParse(s)]; a != nil {
			out = append(out, syncproto.PhotoRefs(a)...)
		}
	}
	return out
}
