package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// proxy forwards the TCP connections made to addr to target, once
// started: before, addr refuses connections as a MinIO that is down does.
type proxy struct {
	addr, target string
	ln           net.Listener
	wg           sync.WaitGroup
}

func (p *proxy) start(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.ln = ln
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() {
				defer c.Close()
				u, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, u)
			})
		}
	})
}

// closedAddr returns a loopback address nothing listens on (yet).
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestMain_MinioDownAtStart starts fieldsyncd while MinIO cannot be
// reached: it starts and serves records — a phone pushes a hazard with a
// photo, another pulls it, the hazard's photo status counts the photo of
// its attachment record — while the photo routes answer 503 with
// Retry-After and code unavailable; then MinIO comes back, without a
// restart, and the photo goes through. The log says that MinIO is down
// once, and that it is back once.
func TestMain_MinioDownAtStart(t *testing.T) {
	t.Parallel()
	db := testenv.Mongo(t)
	mc := testenv.MinioConfig(t)
	if mc.Secure {
		t.Skip("the proxy of this test speaks plain TCP to an http MinIO only")
	}
	minio := &proxy{addr: closedAddr(t), target: mc.Endpoint}
	token := "minio-down-admin-token"
	vars := map[string]string{
		"FIELDSYNC_ADDR":             "127.0.0.1:0",
		"FIELDSYNC_MONGO_URI":        testenv.MongoURI(t),
		"FIELDSYNC_MONGO_DB":         db.Name(),
		"FIELDSYNC_MINIO_ENDPOINT":   minio.addr,
		"FIELDSYNC_MINIO_ACCESS_KEY": mc.AccessKey,
		"FIELDSYNC_MINIO_SECRET_KEY": mc.SecretKey,
		"FIELDSYNC_MINIO_BUCKET":     mc.Bucket,
		"FIELDSYNC_SHUTDOWN_TIMEOUT": "5s",
		"FIELDSYNC_ADMIN_TOKEN":      token,
	}
	var logs syncBuffer
	addrs := make(chan string, 1)
	m := &Main{Stdout: io.Discard, Stderr: &logs, OnListen: func(a net.Addr) { addrs <- a.String() }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil, func(k string) string { return vars[k] }) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var base string
	select {
	case addr := <-addrs:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("fieldsyncd did not start with MinIO down: %v\nlog:\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("not listening after 60 s\nlog:\n%s", logs.String())
	}

	// Two phones of one school, and a device token for raw calls.
	admin := &mobiletest.Admin{URL: base, Token: token}
	school := uuid.NewString()
	ins, code, err := admin.Inspector(ctx, "督学 甲", []string{school})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	phone := func(name string) *mobiletest.Phone {
		code := code
		if name != "first" {
			if code, err = admin.Code(ctx, ins); err != nil {
				t.Fatal(err)
			}
		}
		p := mobiletest.OpenPhone(t, name, filepath.Join(dir, name+".db"), mobile.Options{Validator: mobile.FormsValidator(nil), NoSync: true})
		if _, err := p.E.Enroll(ctx, base, code, name); err != nil {
			t.Fatalf("%s: enroll: %v", name, err)
		}
		return p
	}
	first, second := phone("first"), phone("second")
	rawCode, err := admin.Code(ctx, ins)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := client.New(base, "").Enroll(ctx, client.EnrollRequest{Code: rawCode, DeviceID: uuid.New(), DeviceName: "raw"})
	if err != nil {
		t.Fatal(err)
	}

	// The first phone reports a hazard with a photo, and syncs: the
	// record goes through, the photo waits.
	jpg, err := mobiletest.JPEG(rand.New(rand.NewPCG(7, 7)), 64, 48, 90)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "photo.jpg")
	if err := os.WriteFile(path, jpg, 0o644); err != nil {
		t.Fatal(err)
	}
	id := mobile.NewRecordID()
	att, ref, err := first.E.NewAttachment("hazard", id, school, path, "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	js := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	if _, err := first.E.Save(mobile.Draft{ID: id, Kind: "hazard", SchoolID: school, FormID: "hazard.report", FormVersion: 1,
		Values: map[string]json.RawMessage{
			"school_id": js(school), "source": js("inspector_visit"), "category": js("fire"), "location_desc": js("教学楼二层"),
			"title": js("灭火器过期"), "description": js("压力不足"), "severity": js("medium"), "photo_ids": js([]string{att.String()}),
		}}); err != nil {
		t.Fatal(err)
	}
	rep, _ := first.E.Sync(ctx, nil)
	if rep.Applied < 2 || rep.Rejected != 0 || rep.Photos != 0 {
		t.Fatalf("sync with MinIO down: %+v", rep)
	}
	rep, err = second.E.Sync(ctx, nil)
	if err != nil || rep.Pulled < 2 {
		t.Fatalf("pull with MinIO down: %+v, %v", rep, err)
	}
	if r, err := second.E.Record(id); err != nil || r == nil {
		t.Fatalf("the second phone lacks the hazard: %v", err)
	}

	// The photo routes answer 503, Retry-After, code unavailable.
	get := func(path string) (int, http.Header, syncproto.ErrorResponse) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+enr.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e syncproto.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, resp.Header, e
	}
	for _, p := range []string{"/v1/blobs/" + ref.SHA256, "/v1/blobs/" + ref.SHA256 + "/url"} {
		status, h, e := get(p)
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || e.Error == nil || e.Error.Code != syncproto.EUNAVAILABLE {
			t.Fatalf("GET %s with MinIO down = %d, Retry-After %q, %+v", p, status, h.Get("Retry-After"), e.Error)
		}
	}

	// The hazard's photo status needs only the database: its photo is
	// that of the attachment record its photo_ids name, not there yet.
	photos := func() map[string]any {
		var out map[string]any
		if err := client.New(base, enr.Token).Do(ctx, http.MethodGet, "/v1/records/"+id.String()+"/photos?scope="+school, nil, &out); err != nil {
			t.Fatalf("photos of the hazard: %v", err)
		}
		return out
	}
	if rp := photos(); fmt.Sprintf("%v %v %v", rp["complete"], rp["expected"], rp["received"]) != "false 1 0" {
		t.Fatalf("photos of the hazard with MinIO down: %v", rp)
	}

	// MinIO comes back; within the breaker's probe interval the photo
	// goes through, without a restart.
	minio.start(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err = first.E.Sync(ctx, nil)
		if rep.Photos == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the photo did not go through after MinIO came back: %+v, %v\nlog:\n%s", rep, err, logs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Another device of the school reads it through the record.
	var u client.SignedURL
	if err := client.New(base, enr.Token).Do(ctx, http.MethodGet, "/v1/blobs/"+ref.SHA256+"/url", nil, &u); err != nil {
		t.Fatalf("url after MinIO came back: %v", err)
	}
	resp, err := http.Get(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != string(jpg) {
		t.Fatalf("GET the link = %d, %d bytes", resp.StatusCode, len(got))
	}

	if rp := photos(); fmt.Sprintf("%v %v %v", rp["complete"], rp["expected"], rp["received"]) != "true 1 1" {
		t.Fatalf("photos of the hazard after the upload: %v", rp)
	}

	down, back := 0, 0
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, "object store (MinIO) is unavailable"):
			down++
		case strings.Contains(line, "object store (MinIO) is back"):
			back++
		}
	}
	if down != 1 || back != 1 {
		t.Fatalf("the log says %d times that MinIO is down and %d times that it is back, want once each:\n%s", down, back, logs.String())
	}
}
