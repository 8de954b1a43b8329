package consoletest_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/internal/browsertest"
	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The sample county (internal/samples): the boarding junior school, its
// zone and the inspector the test enrolls.
const (
	school    = "0192b000-0000-7000-8000-000000000103"
	zone      = "0192b000-0000-7000-8000-000000000c01"
	inspector = "0192b000-0000-7000-8000-0000000002a1"
	user      = "0192b000-0000-7000-8000-0000000002b1"
	password  = "a long test password"
)

// jpeg writes a camera-sized JPEG and returns its path.
func jpeg(t *testing.T, seed uint64) string {
	t.Helper()
	b, err := mobiletest.JPEG(rand.New(rand.NewPCG(seed, 3)), 1600, 1200, 85)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), fmt.Sprintf("photo-%d.jpg", seed))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// phoneEvent appends an event the inspector makes on the phone.
func phoneEvent(t *testing.T, e *mobile.Engine, id uuid.UUID, userID string, ev map[string]any) {
	t.Helper()
	ev["actor_id"], ev["actor_role"], ev["occurred_at"] = userID, "inspector", time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(ev)
	if _, err := e.Append(id, "events", b); err != nil {
		t.Fatalf("append %s: %v", ev["type"], err)
	}
}

func sync(t *testing.T, e *mobile.Engine) {
	t.Helper()
	rep, err := e.Sync(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected > 0 {
		t.Fatalf("sync rejected %d changes: %+v", rep.Rejected, rep)
	}
}

// state is the hazard as the phone folds it.
func state(t *testing.T, e *mobile.Engine, id uuid.UUID) syncproto.HazardState {
	t.Helper()
	r, err := e.Record(id)
	if err != nil {
		t.Fatal(err)
	}
	return syncproto.FoldHazard(r, time.Now())
}

type action struct {
	Status, Error, Flash string
}

// TestOfficeConsole: a phone reports a high-severity hazard with two
// photos; the reviewer finds it in the queue, sees both photos, confirms
// it and issues a notice; the phone pulls the notice, reports the
// rectification with an after photo; the reviewer's document-review
// verification is refused (high severity needs an inspector on site), the
// inspector verifies on site; the reviewer's closing is refused, the
// office head closes it. Screenshots go to artifacts/browser/console/.
func TestOfficeConsole(t *testing.T) {
	srv := browsertest.Start(t, "FIELDSYNC_CONSOLE_LOOPBACK_HTTP=true")
	ctx := t.Context()
	if err := srv.SeedSamples(ctx); err != nil {
		t.Fatal(err)
	}
	code, err := srv.Inspector(ctx, inspector, user, "陈立群", school)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	reviewer := client.Account{Login: "wang.shenhe", Name: "王审核", Password: password, Roles: []string{"office_reviewer"}, Zones: []string{zone}}
	head := client.Account{Login: "chen.zhuren", Name: "陈主任", Password: password, Roles: []string{"office_head"}}
	for _, a := range []client.Account{reviewer, head} {
		if _, err := c.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}

	// The phone reports the hazard with two photos.
	e, err := mobile.Open(filepath.Join(t.TempDir(), "phone.db"), mobile.Options{Validator: mobile.FormsValidator(time.Now), Now: time.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	enr, err := e.Enroll(ctx, srv.URL, code, "测试手机")
	if err != nil {
		t.Fatal(err)
	}
	sync(t, e)
	id := mobile.NewRecordID()
	var photos []string
	for i := range 2 {
		att, _, err := e.NewAttachment("hazard", id, school, jpeg(t, uint64(i+1)), "image/jpeg")
		if err != nil {
			t.Fatal(err)
		}
		photos = append(photos, att.String())
	}
	values := map[string]any{"school_id": school, "source": "inspector_visit", "title": "宿舍楼配电箱电线裸露", "category": "electrical", "severity": "high",
		"location_desc": "3号宿舍楼1楼配电箱", "description": "配电箱门损坏，电线裸露，学生可触及。", "photo_ids": photos}
	draft := mobile.Draft{ID: id, Kind: "hazard", SchoolID: school, FormID: "hazard.report", FormVersion: 1, Values: map[string]json.RawMessage{}}
	for k, v := range values {
		draft.Values[k], _ = json.Marshal(v)
	}
	if _, err := e.Save(draft); err != nil {
		t.Fatal(err)
	}
	sync(t, e)

	input := map[string]any{"url": srv.URL, "hazard": id.String(), "reviewer": reviewer, "head": head,
		"deadline": time.Now().In(syncproto.ChinaTime).AddDate(0, 0, 14).Format(time.DateOnly)}
	run := func(phase string, out any) {
		t.Helper()
		input["phase"] = phase
		browsertest.RunAs(t, "console", "internal/consoletest/testdata/console.js", input, out)
	}

	var a struct {
		RowText               string
		ReportedCount         int
		Before                []int
		Confirm, Notice       action
		CookieVisibleToScript bool
		QueueBytes            int
		DetailBytes           int
		Violations            []map[string]any
	}
	run("a", &a)
	if !strings.Contains(a.RowText, "宿舍楼配电箱电线裸露") || a.ReportedCount < 1 {
		t.Errorf("the queue row: %q, %d reported", a.RowText, a.ReportedCount)
	}
	if len(a.Before) != 2 || a.Before[0] == 0 || a.Before[1] == 0 {
		t.Errorf("the before photos' natural widths: %v, want two loaded", a.Before)
	}
	if a.CookieVisibleToScript {
		t.Error("the session cookie is readable by script")
	}
	if a.Confirm.Status != "confirmed" || a.Notice.Status != "notice_issued" {
		t.Fatalf("confirm %+v, notice %+v", a.Confirm, a.Notice)
	}
	t.Logf("page weight: queue %d bytes, detail with its assets %d bytes (before photos)", a.QueueBytes, a.DetailBytes)
	if len(a.Violations) > 0 {
		t.Errorf("axe-core found WCAG A/AA violations on the queue and detail pages: %v", a.Violations)
	}

	// The phone pulls and sees the notice; the school fixes it; the
	// inspector reports the rectification with an after photo.
	sync(t, e)
	st := state(t, e, id)
	if st.Status != syncproto.HazardNoticeIssued || st.Deadline != input["deadline"] || !strings.Contains(string(st.Responsible), "黄卫东") {
		t.Fatalf("the phone after the pull: %s deadline %s responsible %s", st.Status, st.Deadline, st.Responsible)
	}
	after, _, err := e.NewAttachment("hazard", id, school, jpeg(t, 3), "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	phoneEvent(t, e, id, enr.UserID, map[string]any{"type": "acknowledged", "note": "学校已签收整改通知"})
	phoneEvent(t, e, id, enr.UserID, map[string]any{"type": "rectification_reported", "note": "已更换电线、加装线槽", "photo_ids": []string{after.String()}})
	sync(t, e)

	var b struct {
		After  []int
		Verify action
	}
	run("b", &b)
	if len(b.After) != 1 || b.After[0] == 0 {
		t.Errorf("the after photo's natural width: %v", b.After)
	}
	if b.Verify.Status != "pending_verification" || !strings.Contains(b.Verify.Error, "现场复查") {
		t.Errorf("the reviewer's verification of a high-severity hazard: %+v, want refused", b.Verify)
	}

	// The inspector verifies on site.
	phoneEvent(t, e, id, enr.UserID, map[string]any{"type": "verification_passed", "note": "现场复查，整改到位", "photo_ids": []string{after.String()}})
	sync(t, e)

	var cc struct {
		ReviewerClose, HeadClose action
		Timeline                 []string
	}
	run("c", &cc)
	if cc.ReviewerClose.Status != "verified" || !strings.Contains(cc.ReviewerClose.Error, "高风险隐患须由督导室主任消号") {
		t.Errorf("the reviewer's closing: %+v, want refused", cc.ReviewerClose)
	}
	if cc.HeadClose.Status != "closed" || cc.HeadClose.Error != "" {
		t.Errorf("the head's closing: %+v", cc.HeadClose)
	}
	sync(t, e)
	if st := state(t, e, id); st.Status != syncproto.HazardClosed {
		t.Errorf("the phone after the closing: %s", st.Status)
	}

	// A second phone of the inspector and the first one change the
	// location concurrently; the reviewer settles it in the inbox.
	code2, err := srv.Code(ctx, inspector)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := mobile.Open(filepath.Join(t.TempDir(), "phone2.db"), mobile.Options{Validator: mobile.FormsValidator(time.Now), Now: time.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Close() })
	if _, err := e2.Enroll(ctx, srv.URL, code2, "第二部手机"); err != nil {
		t.Fatal(err)
	}
	sync(t, e2)
	for i, ph := range []*mobile.Engine{e, e2} {
		loc, _ := json.Marshal([]string{"3号宿舍楼1楼配电箱（东侧）", "3号宿舍楼一层东侧楼梯间配电箱"}[i])
		if _, err := ph.Save(mobile.Draft{ID: id, Values: map[string]json.RawMessage{"location_desc": loc}}); err != nil {
			t.Fatal(err)
		}
	}
	sync(t, e)
	sync(t, e2)
	var d struct {
		Versions []string
		Flash    string
		Left     int
	}
	run("d", &d)
	if len(d.Versions) != 2 || d.Left != 0 {
		t.Errorf("the conflict inbox: %+v", d)
	}
	sync(t, e2)
	r, err := e2.Record(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ConflictFields()) != 0 || len(r.Conflicts) == 0 {
		t.Errorf("the phone after the resolution: in conflict %v, conflict log %d", r.ConflictFields(), len(r.Conflicts))
	}
	rep, err := c.VerifyAudit(ctx)
	if err != nil || !rep.OK {
		t.Errorf("audit verify: %+v %v", rep, err)
	}
	t.Logf("timeline: %v; audit log intact, %d entries", cc.Timeline, rep.Checked)
}
