package mobile_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// phone is a test phone on the fake server, called directly (no HTTP),
// through mobiletest's Faulty transport.
type phone struct {
	*mobiletest.Phone
	tb testing.TB
}

func newPhone(tb testing.TB, srv *mobiletest.Server, name string) *phone {
	tb.Helper()
	tok, user := "fsd_"+name+"_"+uuid.NewString(), "user-"+name
	// A "kill" closes the file without losing the OS's page cache, so
	// fsync (which guards against power cuts) only slows the tests down.
	mp := mobiletest.OpenPhone(tb, name, filepath.Join(tb.TempDir(), name+".db"), mobile.Options{Transport: srv.Transport(tok), NoSync: true})
	srv.AddDevice(tok, mp.E.DeviceID(), user)
	if err := mp.E.SetServer("", tok, user); err != nil {
		tb.Fatal(err)
	}
	return &phone{Phone: mp, tb: tb}
}

func (p *phone) kill()                   { p.Kill(p.tb) }
func (p *phone) sync() mobile.SyncReport { return p.Sync(p.tb) }

func (p *phone) save(d mobile.Draft) *syncproto.Record {
	p.tb.Helper()
	r, err := p.E.Save(d)
	if err != nil {
		p.tb.Fatalf("%s: save: %v", p.Name, err)
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
	b, err := mobiletest.JPEG(rand.New(rand.NewPCG(seed, 7)), w, h, 80)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("photo-%d.jpg", seed))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// assertConverged checks that every phone holds exactly the server's
// records with an empty outbox and its photos done, that no op was applied
// twice, and that every photo is on the server with its hash.
func assertConverged(tb testing.TB, srv *mobiletest.Server, phones ...*phone) {
	tb.Helper()
	mps := make([]*mobiletest.Phone, len(phones))
	for i, p := range phones {
		mps[i] = p.Phone
	}
	assertOnServer(tb, srv, mps...)
}

// assertOnServer is assertConverged for mobiletest phones.
func assertOnServer(tb testing.TB, srv *mobiletest.Server, mps ...*mobiletest.Phone) {
	tb.Helper()
	for _, p := range mps {
		photos, _ := p.E.Photos()
		for _, ph := range photos {
			data, ok := srv.Blob(ph.SHA256)
			if sum, _, _ := hashBytes(data); !ok || sum != ph.SHA256 {
				tb.Errorf("%s: photo %s missing or corrupt on the server", p.Name, ph.SHA256)
			}
		}
	}
	mobiletest.CheckConverged(tb, srv.Records(), mps...)
	for op, n := range srv.Applied() {
		if n != 1 {
			tb.Errorf("op %s applied %d times", op, n)
		}
	}
}

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
