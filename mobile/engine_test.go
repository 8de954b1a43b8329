package mobile_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

func TestSaveAndSync(t *testing.T) {
	srv := mobiletest.NewServer()
	a, b := newPhone(t, srv, "a"), newPhone(t, srv, "b")
	r := a.save(hazardDraft("灭火器过期"))
	a.save(mobile.Draft{ID: r.ID, Values: vals("severity", "high")})
	st, _ := a.E.Status()
	if got, want := st.Outbox, 1; got != want {
		t.Fatalf("outbox=%d, want %d: two edits of one unsent record fold into one entry", got, want)
	}
	rep := a.sync()
	if rep.Applied != 1 || rep.Pushed != 1 {
		t.Fatalf("report %+v, want one applied change", rep)
	}
	b.sync()
	got, err := b.E.Record(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v := string(got.Value("severity")); v != `"high"` {
		t.Fatalf("severity on b = %s", v)
	}
	assertConverged(t, srv, a, b)
}

func TestSaveValidates(t *testing.T) {
	srv := mobiletest.NewServer()
	p := newPhone(t, srv, "a")
	p.E.Close()
	p.Opts.Validator = mobile.ValidatorFunc(func(form string, v int, values map[string]json.RawMessage) error {
		if values["title"] == nil {
			return syncproto.FieldError("The hazard is not valid.", map[string]string{"title": "必填 / required"})
		}
		return nil
	})
	p.Open(t)
	d := hazardDraft("x")
	delete(d.Values, "title")
	_, err := p.E.Save(d)
	if got := syncproto.ErrorCode(err); got != syncproto.EINVALID {
		t.Fatalf("code=%q, want %q (err %v)", got, syncproto.EINVALID, err)
	}
	if st, _ := p.E.Status(); st.Outbox != 0 || st.Records != 0 {
		t.Fatalf("an invalid draft wrote something: %+v", st)
	}
	r := p.save(hazardDraft("ok"))
	// The whole record is validated: an edit of one field keeps the others.
	p.save(mobile.Draft{ID: r.ID, Values: vals("severity", "low")})
}

func TestHTTPTransportEnrollAndSync(t *testing.T) {
	srv := mobiletest.NewServer()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	srv.AddCode("7KQ2-M9XD-4TWA", "inspector-1")
	e, err := mobile.Open(filepath.Join(t.TempDir(), "p.db"), mobile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if _, err := e.Sync(ctx, nil); err == nil {
		t.Fatal("sync before enrollment succeeded")
	}
	en, err := e.Enroll(ctx, hs.URL, "7KQ2-M9XD-4TWA", "测试手机")
	if err != nil {
		t.Fatal(err)
	}
	if en.UserID != "inspector-1" {
		t.Fatalf("enrollment %+v", en)
	}
	if _, err := e.Enroll(ctx, hs.URL, "7KQ2-M9XD-4TWA", "again"); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
		t.Fatalf("second use of a code: %v", err)
	}
	r, err := e.Save(hazardDraft("楼梯扶手松动"))
	if err != nil {
		t.Fatal(err)
	}
	photo := writeJPEG(t, t.TempDir(), 1, 300, 200)
	if _, err := e.AttachPhotoTo(r.ID, "photo_ids", photo, ""); err != nil {
		t.Fatal(err)
	}
	var phases []string
	rep, err := e.Sync(ctx, func(p mobile.Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != 2 || rep.Photos != 1 {
		t.Fatalf("report %+v", rep)
	}
	if got, want := strings.Join(phases, ","), "push,pull,photos"; got != want {
		t.Fatalf("phases %s, want %s", got, want)
	}
	recs := srv.Records()
	refs := photosOf(recs, recs[r.ID], "photo_ids")
	if len(refs) != 1 {
		t.Fatalf("server record refers to %d photos", len(refs))
	}
	if _, ok := srv.Blob(refs[0].SHA256); !ok {
		t.Fatal("photo not on the server")
	}
	if refs[0].ContentType != "image/jpeg" {
		t.Fatalf("content type %q", refs[0].ContentType)
	}
}

func TestHTTPErrors(t *testing.T) {
	srv := mobiletest.NewServer()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	tr := &mobile.HTTPTransport{BaseURL: hs.URL, Token: func() string { return "nope" }}
	_, err := tr.Info(context.Background())
	if got := syncproto.ErrorCode(err); got != syncproto.EUNAUTHORIZED {
		t.Fatalf("code %q (%v)", got, err)
	}
	dev := uuid.Must(uuid.NewV7())
	srv.AddDevice("tok", dev, "u")
	tr.Token = func() string { return "tok" }
	srv.NewEpoch()
	old := syncproto.Cursor{Epoch: uuid.Must(uuid.NewV7())}.Encode()
	_, err = tr.Pull(context.Background(), &syncproto.PullRequest{Protocol: 1, Cursor: old})
	if got := syncproto.ErrorCode(err); got != syncproto.ESTALE {
		t.Fatalf("code %q (%v)", got, err)
	}
	tr.GzipRequests = true
	big := strings.Repeat("隐患描述", 1000)
	e, _ := mobile.Open(filepath.Join(t.TempDir(), "g.db"), mobile.Options{Transport: tr})
	defer e.Close()
	srv.AddDevice("tok2", e.DeviceID(), "u")
	tr.Token = func() string { return "tok2" }
	d := hazardDraft("gzip")
	d.Values["description"] = js(big)
	if _, err := e.Save(d); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.Sync(context.Background(), nil); err != nil || rep.Applied != 1 {
		t.Fatalf("gzip push: %+v %v", rep, err)
	}
}

func TestOffline(t *testing.T) {
	srv := mobiletest.NewServer()
	p := newPhone(t, srv, "a")
	p.save(hazardDraft("x"))
	if err := p.E.SetOffline(true); err != nil {
		t.Fatal(err)
	}
	if _, err := p.E.Sync(context.Background(), nil); err != mobile.ErrOffline {
		t.Fatalf("err=%v, want ErrOffline", err)
	}
	if srv.Pushes != 0 {
		t.Fatal("an offline phone pushed")
	}
	p.E.SetOffline(false)
	p.sync()
	assertConverged(t, srv, p)
}
