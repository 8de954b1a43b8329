package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/memstore"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The office console's domain: accounts and sessions, the hazard desk
// (decisions pushed through the Syncer), the read model and the audit
// log, on the in-memory stores and on FerretDB.

const (
	deskSchool = "0192b000-0000-7000-8000-000000000103"
	otherSch   = "0192b000-0000-7000-8000-000000000101"
	deskZone   = "0192b000-0000-7000-8000-000000000c01"
)

// desk is a Syncer with the console's hooks on fresh stores.
type desk struct {
	syncer   *server.Syncer
	desk     *server.Desk
	accounts *server.Accounts
	audit    *server.Audit
	console  server.ConsoleStore
	now      time.Time
}

func newDesk(t *testing.T, st testenv.Stores) *desk {
	t.Helper()
	d := &desk{now: time.Now().UTC().Truncate(time.Second), console: st.Console}
	clock := func() time.Time { return d.now }
	d.syncer = server.NewSyncer(st.Sync, uuid.Must(uuid.NewV7()))
	d.syncer.Now = clock
	d.syncer.Access.Assigned = func(context.Context, string) ([]string, error) { return []string{deskSchool}, nil }
	d.syncer.Access.ZoneSchools = st.Console.ZoneSchools
	d.audit = &server.Audit{Store: st.Console, Now: clock}
	d.desk = &server.Desk{Sync: d.syncer, Access: d.syncer.Access, Read: st.Console, Audit: d.audit, Now: clock}
	d.syncer.Stored = server.StoredHooks(d.desk.Stored)
	d.accounts = server.NewAccounts(st.Console)
	d.accounts.Now = clock
	return d
}

// deskPhone is an enrolled inspector's device.
type deskPhone struct {
	p   server.Principal
	w   *syncproto.Writer
	rec map[uuid.UUID]*syncproto.Record // what it holds
}

func newDeskPhone() *deskPhone {
	dev := uuid.Must(uuid.NewV7())
	user := "user-" + dev.String()[30:]
	return &deskPhone{
		p:   server.Principal{DeviceID: dev, UserID: user, InspectorID: "insp-" + user, Roles: []string{server.RoleInspector}, Replica: dev},
		w:   &syncproto.Writer{Replica: dev, Author: user},
		rec: map[uuid.UUID]*syncproto.Record{},
	}
}

// push pushes one change of the phone and fails the test unless it is
// accepted.
func (d *desk) push(t *testing.T, p server.Principal, delta *syncproto.Record, base syncproto.Vector) syncproto.Result {
	t.Helper()
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: p.DeviceID, BatchID: uuid.Must(uuid.NewV7()),
		Changes: []syncproto.Change{{OpID: uuid.Must(uuid.NewV7()), Record: delta, Base: base}}}
	if !p.IsDevice() {
		req.DeviceID = p.Replica
	}
	resp, err := d.syncer.Push(server.WithPrincipal(t.Context(), p), p, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; r.Status == syncproto.StatusRejected {
		t.Fatalf("push rejected: %v", r.Error)
	}
	return resp.Results[0]
}

// school pushes the reference record of a school in a zone, as the
// office's automation does.
func (d *desk) school(t *testing.T, id, name, zone string) {
	t.Helper()
	admin := server.Principal{UserID: "admin", Roles: []string{server.RoleAdmin}, Automation: true, Replica: uuid.Must(uuid.NewV7())}
	w := &syncproto.Writer{Replica: admin.Replica, Author: "admin", Now: d.now}
	r := &syncproto.Record{ID: uuid.MustParse(id), Kind: "school", CreatedAt: d.now, CreatedBy: "admin"}
	r, _ = syncproto.Set(r, "name", jsonOf(t, name), w)
	r, _ = syncproto.Set(r, "zone_id", jsonOf(t, zone), w)
	d.push(t, admin, r, syncproto.Vector{})
}

func jsonOf(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := syncproto.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// report makes the phone report a hazard with a severity.
func (d *desk) report(t *testing.T, ph *deskPhone, title, severity string) uuid.UUID {
	t.Helper()
	ph.w.Now = d.now
	id := uuid.Must(uuid.NewV7())
	r := &syncproto.Record{ID: id, Kind: "hazard", SchoolID: deskSchool, CreatedAt: d.now, CreatedBy: ph.p.UserID}
	r, _ = syncproto.Set(r, "title", jsonOf(t, title), ph.w)
	r, _ = syncproto.Set(r, "severity", jsonOf(t, severity), ph.w)
	d.push(t, ph.p, r, syncproto.Vector{})
	d.pull(t, ph, id)
	return id
}

// pull gives the phone the server's state of a record.
func (d *desk) pull(t *testing.T, ph *deskPhone, id uuid.UUID) *syncproto.Record {
	t.Helper()
	r, err := d.syncer.Record(t.Context(), deskSchool, id)
	if err != nil {
		t.Fatal(err)
	}
	ph.rec[id] = r
	return r
}

// event makes the phone append an event to a hazard it holds and
// returns the delta and its base (for pushing later, when offline).
func (d *desk) event(t *testing.T, ph *deskPhone, id uuid.UUID, ev syncproto.Event) (*syncproto.Record, syncproto.Vector) {
	t.Helper()
	ph.w.Now = d.now
	ev.ActorID, ev.ActorRole, ev.OccurredAt = ph.p.UserID, server.RoleInspector, d.now
	data, err := ev.Data()
	if err != nil {
		t.Fatal(err)
	}
	base := ph.rec[id].Version()
	next, delta := syncproto.Append(ph.rec[id], "events", uuid.Must(uuid.NewV7()).String(), data, ph.w)
	ph.rec[id] = next
	return delta, base
}

func (d *desk) account(t *testing.T, login string, roles []string, scope ...string) (server.Principal, server.Session) {
	t.Helper()
	in := server.NewAccount{Login: login, Name: "姓名" + login, Password: "correct horse battery", Roles: roles}
	for _, s := range scope {
		kind, id, _ := strings.Cut(s, ":")
		if kind == "zone" {
			in.Zones = append(in.Zones, id)
		} else {
			in.Schools = append(in.Schools, id)
		}
	}
	if _, err := d.accounts.Create(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	tok, _, err := d.accounts.SignIn(t.Context(), login, "correct horse battery", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	p, s, err := d.accounts.Authenticate(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

func (d *desk) act(t *testing.T, p server.Principal, id uuid.UUID, a server.HazardAction) error {
	t.Helper()
	_, err := d.desk.Act(server.WithPrincipal(t.Context(), p), p, id.String(), a)
	return err
}

func (d *desk) status(t *testing.T, id uuid.UUID) syncproto.HazardState {
	t.Helper()
	r, err := d.syncer.Record(t.Context(), deskSchool, id)
	if err != nil {
		t.Fatal(err)
	}
	return syncproto.FoldHazard(r, d.now)
}

func TestAccounts(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		d := newDesk(t, st)
		ctx := t.Context()
		for _, tc := range []struct {
			name  string
			in    server.NewAccount
			field string
		}{
			{"short password", server.NewAccount{Login: "a", Name: "甲", Password: "short", Roles: []string{"admin"}}, "password"},
			{"no role", server.NewAccount{Login: "a", Name: "甲", Password: "long enough pw"}, "roles"},
			{"unknown role", server.NewAccount{Login: "a", Name: "甲", Password: "long enough pw", Roles: []string{"boss"}}, "roles"},
			{"no login", server.NewAccount{Name: "甲", Password: "long enough pw", Roles: []string{"admin"}}, "login"},
			{"bad scope", server.NewAccount{Login: "a", Name: "甲", Password: "long enough pw", Roles: []string{"admin"}, Schools: []string{"x"}}, "scope"},
		} {
			_, err := d.accounts.Create(ctx, tc.in)
			var e *syncproto.Error
			if !errors.As(err, &e) || e.Code != syncproto.EINVALID || e.Fields[tc.field] == "" {
				t.Errorf("%s: %v, want invalid with field %s", tc.name, err, tc.field)
			}
		}
		p, sess := d.account(t, "wang", []string{server.RoleOfficeReviewer})
		if p.UserID == "" || p.Replica != sess.Replica || p.IsDevice() || !p.Has(server.RoleOfficeReviewer) || p.Has(server.RoleOfficeHead) {
			t.Errorf("principal %+v", p)
		}
		if _, err := d.accounts.Create(ctx, server.NewAccount{Login: "WANG", Name: "王", Password: "long enough pw", Roles: []string{"admin"}}); syncproto.ErrorCode(err) != syncproto.EINVALID {
			t.Errorf("a second WANG: %v", err)
		}

		// Throttling per login: 5 failures, then even the right password
		// is refused.
		for i := range server.MaxFailuresPerAccount {
			if _, _, err := d.accounts.SignIn(ctx, "wang", "wrong password!", "10.0.0.1"); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		if _, _, err := d.accounts.SignIn(ctx, "wang", "correct horse battery", "10.0.0.2"); !errors.Is(err, server.ErrThrottled) {
			t.Errorf("after %d failures: %v, want throttled", server.MaxFailuresPerAccount, err)
		}
		d.now = d.now.Add(server.FailureWindow + time.Second)
		tok1, s1, err := d.accounts.SignIn(ctx, "wang", "correct horse battery", "10.0.0.2")
		if err != nil {
			t.Fatalf("after the window: %v", err)
		}
		// Throttling per address: many logins from one address.
		for i := range server.MaxFailuresPerAddress {
			d.accounts.SignIn(ctx, "nobody"+string(rune('a'+i%26))+uuid.NewString()[:4], "x", "10.9.9.9")
		}
		if _, _, err := d.accounts.SignIn(ctx, "wang", "correct horse battery", "10.9.9.9"); !errors.Is(err, server.ErrThrottled) {
			t.Errorf("after %d failures from one address: %v, want throttled", server.MaxFailuresPerAddress, err)
		}

		// Password change ends the other sessions; sign-out everywhere all.
		tok2, _, err := d.accounts.SignIn(ctx, "wang", "correct horse battery", "10.0.0.3")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.accounts.ChangePassword(ctx, s1, "wrong", "another long one"); syncproto.ErrorCode(err) != syncproto.EINVALID {
			t.Errorf("change with a wrong old password: %v", err)
		}
		if err := d.accounts.ChangePassword(ctx, s1, "correct horse battery", "another long one"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.accounts.Authenticate(ctx, tok2); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
			t.Errorf("the other session after a password change: %v", err)
		}
		if _, _, err := d.accounts.Authenticate(ctx, tok1); err != nil {
			t.Errorf("the session that changed the password: %v", err)
		}
		if _, _, err := d.accounts.SignIn(ctx, "wang", "another long one", "10.0.0.4"); err != nil {
			t.Errorf("sign in with the new password: %v", err)
		}
		if err := d.accounts.SignOutEverywhere(ctx, s1.AccountID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.accounts.Authenticate(ctx, tok1); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
			t.Errorf("after sign-out everywhere: %v", err)
		}
		// Sessions expire.
		tok3, _, _ := d.accounts.SignIn(ctx, "wang", "another long one", "10.0.0.4")
		d.now = d.now.Add(server.SessionLifetime)
		if _, _, err := d.accounts.Authenticate(ctx, tok3); syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
			t.Errorf("an expired session: %v", err)
		}
		if !server.CheckPassword(mustHash(t, "pw 1234567890"), "pw 1234567890") || server.CheckPassword(mustHash(t, "pw 1234567890"), "pw 1234567891") {
			t.Error("CheckPassword")
		}
		if err := server.CheckCSRF(sess, ""); syncproto.ErrorCode(err) != syncproto.EFORBIDDEN {
			t.Errorf("no CSRF token: %v", err)
		}
		if err := server.CheckCSRF(sess, sess.CSRF); err != nil {
			t.Errorf("the CSRF token: %v", err)
		}
	})
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := server.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestDeskLifecycle follows a high-severity hazard from the phone's
// report to its closing, every office decision a pushed change.
func TestDeskLifecycle(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		d := newDesk(t, st)
		d.school(t, deskSchool, "东河县第二初级中学", deskZone)
		ph := newDeskPhone()
		id := d.report(t, ph, "宿舍楼电线裸露", "high")
		reviewer, _ := d.account(t, "reviewer", []string{server.RoleOfficeReviewer})
		head, _ := d.account(t, "head", []string{server.RoleOfficeHead})
		outsider, _ := d.account(t, "outsider", []string{server.RoleOfficeReviewer}, "school:"+otherSch)
		zoned, _ := d.account(t, "zoned", []string{server.RoleOfficeReviewer}, "zone:"+deskZone)
		viewer, _ := d.account(t, "viewer", []string{server.RoleInspector}, "school:"+deskSchool)

		row, err := st.Console.Hazard(t.Context(), id.String())
		if err != nil || row.Status != syncproto.HazardReported || row.ZoneID != deskZone || row.Severity != "high" {
			t.Fatalf("read model %+v %v", row, err)
		}
		steps := []struct {
			who    server.Principal
			a      server.HazardAction
			code   string // "" accepted
			status string
			msg    string
		}{
			{outsider, server.HazardAction{Action: server.ActConfirm, Reason: "属实"}, syncproto.EFORBIDDEN, syncproto.HazardReported, "责任范围"},
			{viewer, server.HazardAction{Action: server.ActConfirm, Reason: "属实"}, syncproto.EFORBIDDEN, syncproto.HazardReported, "督导室"},
			{reviewer, server.HazardAction{Action: server.ActConfirm}, syncproto.EINVALID, syncproto.HazardReported, "reason"},
			{reviewer, server.HazardAction{Action: server.ActNotice, Reason: "先下通知"}, syncproto.EINVALID, syncproto.HazardReported, "deadline"},
			{zoned, server.HazardAction{Action: server.ActConfirm, Reason: "核实属实"}, "", syncproto.HazardConfirmed, ""},
			{reviewer, server.HazardAction{Action: server.ActConfirm, Reason: "再确认"}, syncproto.ECONFLICT, syncproto.HazardConfirmed, "不能确认隐患"},
			{reviewer, server.HazardAction{Action: server.ActNotice, Reason: "限期整改", Deadline: d.now.AddDate(0, 0, 14).In(syncproto.ChinaTime).Format(time.DateOnly),
				Responsible: "黄卫东", Items: []string{"更换电线", "加装线槽"}}, "", syncproto.HazardNoticeIssued, ""},
			{reviewer, server.HazardAction{Action: server.ActRectification, Reason: "学校电话说已整改"}, syncproto.EFORBIDDEN, syncproto.HazardNoticeIssued, "学校或督学"},
		}
		run := func(i int, s struct {
			who    server.Principal
			a      server.HazardAction
			code   string
			status string
			msg    string
		}) {
			t.Helper()
			d.now = d.now.Add(time.Minute)
			err := d.act(t, s.who, id, s.a)
			if got := syncproto.ErrorCode(err); got != s.code {
				t.Fatalf("step %d %s by %s: %v, want code %q", i, s.a.Action, s.who.Name, err, s.code)
			}
			if s.msg != "" && !strings.Contains(err.Error(), s.msg) {
				t.Errorf("step %d: %v, want it to say %q", i, err, s.msg)
			}
			if got := d.status(t, id).Status; got != s.status {
				t.Errorf("step %d: status %s, want %s", i, got, s.status)
			}
		}
		for i, s := range steps {
			run(i, s)
		}
		// Three weeks later, past the deadline, the hazard is overdue in
		// the queue and its counts.
		saved := d.now
		d.now = d.now.AddDate(0, 0, 21)
		of, _ := d.desk.Filter(t.Context(), reviewer)
		of.Overdue = true
		orows, err := st.Console.Hazards(t.Context(), of)
		ocounts, err2 := st.Console.HazardCounts(t.Context(), of)
		if err != nil || err2 != nil || len(orows) != 1 || ocounts["overdue"] != 1 || ocounts[syncproto.HazardNoticeIssued] != 1 {
			t.Errorf("overdue: rows %d, counts %v (%v %v)", len(orows), ocounts, err, err2)
		}
		d.now = saved
		// The phone pulls and sees the notice, acknowledges it and
		// reports the rectification with an after photo.
		r := d.pull(t, ph, id)
		if st := syncproto.FoldHazard(r, d.now); st.Status != syncproto.HazardNoticeIssued || st.Deadline == "" || !strings.Contains(string(st.Responsible), "黄卫东") {
			t.Fatalf("the deskPhone's view after the pull: %+v", st)
		}
		d.now = d.now.Add(time.Minute)
		delta, base := d.event(t, ph, id, syncproto.Event{Type: syncproto.EventAcknowledged})
		d.push(t, ph.p, delta, base)
		delta, base = d.event(t, ph, id, syncproto.Event{Type: syncproto.EventRectificationReported, Photos: []syncproto.EventPhoto{{SHA256: strings.Repeat("ab", 32)}}})
		d.push(t, ph.p, delta, base)
		steps = steps[:0]
		steps = append(steps, []struct {
			who    server.Principal
			a      server.HazardAction
			code   string
			status string
			msg    string
		}{
			{reviewer, server.HazardAction{Action: server.ActVerify, Reason: "照片显示已整改"}, syncproto.ECONFLICT, syncproto.HazardPendingVerification, "现场复查"},
		}...)
		for i, s := range steps {
			run(100+i, s)
		}
		// The inspector verifies on site, with a photo.
		d.pull(t, ph, id)
		d.now = d.now.Add(time.Minute)
		delta, base = d.event(t, ph, id, syncproto.Event{Type: syncproto.EventVerificationPassed, Photos: []syncproto.EventPhoto{{SHA256: strings.Repeat("cd", 32)}}})
		d.push(t, ph.p, delta, base)
		for i, s := range []struct {
			who    server.Principal
			a      server.HazardAction
			code   string
			status string
			msg    string
		}{
			{reviewer, server.HazardAction{Action: server.ActClose, Reason: "消号"}, syncproto.ECONFLICT, syncproto.HazardVerified, "高风险隐患须由督导室主任消号"},
			{head, server.HazardAction{Action: server.ActClose, Reason: "复查合格，消号"}, "", syncproto.HazardClosed, ""},
		} {
			run(200+i, s)
		}
		row, _ = st.Console.Hazard(t.Context(), id.String())
		if row.Status != syncproto.HazardClosed {
			t.Errorf("read model status %s, want closed", row.Status)
		}
		// The counts per status follow (on FerretDB from the per-school
		// count documents), narrowed by severity.
		f, _ := d.desk.Filter(t.Context(), reviewer)
		for sev, want := range map[string]int{"": 1, "high": 1, "low": 0} {
			f.Severity = sev
			counts, err := st.Console.HazardCounts(t.Context(), f)
			if err != nil || counts[syncproto.HazardClosed] != want || counts[syncproto.HazardReported] != 0 || counts["overdue"] != 0 {
				t.Errorf("counts with severity %q: %v %v, want %d closed", sev, counts, err, want)
			}
		}
		f, _ = d.desk.Filter(t.Context(), outsider)
		if counts, _ := st.Console.HazardCounts(t.Context(), f); counts[syncproto.HazardClosed] != 0 {
			t.Errorf("an account scoped elsewhere counts %v", counts)
		}
		// Every accepted change and decision is in the audit log, whose
		// chain holds.
		entries, err := st.Console.AuditOf(t.Context(), id.String())
		if err != nil {
			t.Fatal(err)
		}
		var decisions []string
		for _, e := range entries {
			if strings.HasPrefix(e.Action, "hazard.") {
				decisions = append(decisions, e.Action+"/"+e.Role)
			}
		}
		if got, want := strings.Join(decisions, " "), "hazard.confirm/office_reviewer hazard.notice/office_reviewer hazard.close/office_head"; got != want {
			t.Errorf("decisions in the audit log: %s, want %s", got, want)
		}
		rep, err := d.audit.Verify(t.Context())
		if err != nil || !rep.OK || rep.Checked < 8 {
			t.Errorf("verify: %+v %v", rep, err)
		}
	})
}

// TestDeskClosedWhileOfflinePersists: the office closes a hazard while
// an offline phone records that it persists; after both sync the hazard
// is reopened for review and both events are kept.
func TestDeskClosedWhileOfflinePersists(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		d := newDesk(t, st)
		d.school(t, deskSchool, "东河县第二初级中学", deskZone)
		ph := newDeskPhone()
		id := d.report(t, ph, "围墙开裂", "medium")
		reviewer, _ := d.account(t, "reviewer", []string{server.RoleOfficeReviewer})
		// Fixed on site with a photo, verified on site by the inspector.
		d.now = d.now.Add(time.Minute)
		delta, base := d.event(t, ph, id, syncproto.Event{Type: syncproto.EventFixedOnSite, Photos: []syncproto.EventPhoto{{SHA256: strings.Repeat("ef", 32)}}})
		d.push(t, ph.p, delta, base)
		d.now = d.now.Add(time.Minute)
		delta, base = d.event(t, ph, id, syncproto.Event{Type: syncproto.EventVerificationPassed, Note: "已修补"})
		d.push(t, ph.p, delta, base)
		d.pull(t, ph, id)
		// The phone goes offline; a week later it records on a visit that
		// the crack is back.
		d.now = d.now.Add(7 * 24 * time.Hour)
		persists, pbase := d.event(t, ph, id, syncproto.Event{Type: syncproto.EventVerificationFailed, Note: "裂缝仍在扩大",
			Photos: []syncproto.EventPhoto{{SHA256: strings.Repeat("12", 32)}}})
		// Meanwhile the office closes it.
		d.now = d.now.Add(time.Hour)
		if err := d.act(t, reviewer, id, server.HazardAction{Action: server.ActClose, Reason: "已验收，消号"}); err != nil {
			t.Fatal(err)
		}
		if got := d.status(t, id).Status; got != syncproto.HazardClosed {
			t.Fatalf("after closing: %s", got)
		}
		// The phone syncs.
		d.now = d.now.Add(time.Hour)
		res := d.push(t, ph.p, persists, pbase)
		if res.Status != syncproto.StatusMerged {
			t.Errorf("the deskPhone's push: %s, want merged", res.Status)
		}
		s := d.status(t, id)
		if s.Status != syncproto.HazardRectifying || !s.NeedsReview {
			t.Errorf("after both synced: %s needs_review=%v, want rectifying for review", s.Status, s.NeedsReview)
		}
		var types []string
		for _, e := range s.Events {
			types = append(types, e.Type+":"+e.Conflict)
		}
		if got, want := strings.Join(types, " "), "fixed_on_site:none verification_passed:none closed:none verification_failed:stale_accepted"; got != want {
			t.Errorf("events %s, want %s", got, want)
		}
		row, _ := st.Console.Hazard(t.Context(), id.String())
		if row.Status != syncproto.HazardRectifying || !row.NeedsReview {
			t.Errorf("read model %+v", row)
		}
		// The phone sees it on its next pull.
		if got := syncproto.FoldHazard(d.pull(t, ph, id), d.now).Status; got != syncproto.HazardRectifying {
			t.Errorf("the deskPhone's view: %s", got)
		}
	})
}

// TestAuditTamper: changing one entry in the store makes Verify name it;
// removing one names the gap.
func TestAuditTamper(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		a := &server.Audit{Store: st.Console, Now: time.Now}
		for i := range 5 {
			if err := a.Append(t.Context(), []server.AuditEntry{{Key: "k" + string(rune('0'+i)), Actor: "u", Action: "hazard.confirm", Detail: "reason"}}); err != nil {
				t.Fatal(err)
			}
		}
		// Logged twice, logged once.
		if err := a.Append(t.Context(), []server.AuditEntry{{Key: "k1", Actor: "u", Action: "x"}}); err != nil {
			t.Fatal(err)
		}
		rep, err := a.Verify(t.Context())
		if err != nil || !rep.OK || rep.Checked != 5 {
			t.Fatalf("intact: %+v %v", rep, err)
		}
		// Deferred, as fieldsyncd runs it: entries wait in the pending
		// collection (a retried push's entry once) until ChainPending.
		deferred := &server.Audit{Store: st.Console, Now: time.Now, Deferred: true}
		for range 2 {
			if err := deferred.Append(t.Context(), []server.AuditEntry{{Key: "p1", Actor: "u", Action: "change"}, {Key: "p2", Actor: "u", Action: "change"}}); err != nil {
				t.Fatal(err)
			}
		}
		if rep, _ := a.Verify(t.Context()); rep.Checked != 5 {
			t.Errorf("pending entries are in the chain already: %+v", rep)
		}
		if n, err := deferred.ChainPending(t.Context(), 500); err != nil || n != 2 {
			t.Errorf("ChainPending: %d %v, want 2", n, err)
		}
		if n, err := deferred.ChainPending(t.Context(), 500); err != nil || n != 0 {
			t.Errorf("ChainPending again: %d %v, want 0", n, err)
		}
		if rep, err := a.Verify(t.Context()); err != nil || !rep.OK || rep.Checked != 7 {
			t.Fatalf("after chaining: %+v %v", rep, err)
		}
		switch s := st.Console.(type) {
		case interface{ TamperAudit(int64, string) }:
			s.TamperAudit(3, "changed afterwards")
		default:
			testenv.TamperAudit(t, st.Console, 3)
		}
		rep, err = a.Verify(t.Context())
		if err != nil || rep.OK || rep.Broken != 3 || !strings.Contains(rep.Reason, "altered") {
			t.Errorf("tampered: %+v %v, want entry 3 named", rep, err)
		}
	})
}

// TestRebuildReadModel: the read model rebuilt from the change log into
// an empty store equals the one kept current on every push, and a second
// rebuild changes nothing.
func TestRebuildReadModel(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		d := newDesk(t, st)
		d.school(t, deskSchool, "东河县第二初级中学", deskZone)
		ph := newDeskPhone()
		var ids []uuid.UUID
		for i, sev := range []string{"low", "medium", "high"} {
			ids = append(ids, d.report(t, ph, "隐患"+sev, sev))
			d.now = d.now.Add(time.Duration(i+1) * time.Minute)
		}
		reviewer, _ := d.account(t, "reviewer", []string{server.RoleOfficeReviewer})
		if err := d.act(t, reviewer, ids[2], server.HazardAction{Action: server.ActConfirm, Reason: "属实"}); err != nil {
			t.Fatal(err)
		}
		fresh := memstore.NewConsoleStore()
		rebuilt := &server.Desk{Sync: d.syncer, Access: d.syncer.Access, Read: fresh, Now: d.desk.Now}
		log, ok := st.Sync.(server.ChangeLog)
		if !ok {
			t.Fatalf("%T is no ChangeLog", st.Sync)
		}
		for range 2 {
			rep, err := rebuilt.RebuildReadModel(t.Context(), log)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Hazards != 3 || rep.Schools != 1 || rep.States < 5 {
				t.Errorf("rebuild: %+v", rep)
			}
			for _, id := range ids {
				want, err1 := st.Console.Hazard(t.Context(), id.String())
				got, err2 := fresh.Hazard(t.Context(), id.String())
				if err1 != nil || err2 != nil || got != want {
					t.Errorf("hazard %s rebuilt %+v (%v), kept %+v (%v)", id, got, err2, want, err1)
				}
			}
		}
		f, _ := d.desk.Filter(t.Context(), reviewer)
		f.Sort = "urgent"
		rows, err := fresh.Hazards(t.Context(), f)
		if err != nil || len(rows) != 3 || rows[0].Severity != "high" || rows[0].Status != syncproto.HazardConfirmed {
			t.Errorf("the rebuilt queue, most urgent first: %+v %v", rows, err)
		}
	})
}

// TestDeskResolveConflict: two phones rename a hazard concurrently; the
// reviewer settles it with a value of its own, pushed as the session's
// change: the field holds one version, the other two are in the record's
// conflict log, the conflict index says resolved, and an account scoped
// elsewhere neither sees nor resolves it.
func TestDeskResolveConflict(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		d := newDesk(t, st)
		d.school(t, deskSchool, "东河县第二初级中学", deskZone)
		a, b := newDeskPhone(), newDeskPhone()
		id := d.report(t, a, "厕所", "low")
		d.pull(t, b, id)
		for _, ph := range []*deskPhone{a, b} {
			d.now = d.now.Add(time.Second)
			ph.w.Now = d.now
			base := ph.rec[id].Version()
			_, delta := syncproto.Set(ph.rec[id], "title", jsonOf(t, "厕所地面湿滑 by "+ph.p.UserID), ph.w)
			d.push(t, ph.p, delta, base)
		}
		reviewer, _ := d.account(t, "reviewer", []string{server.RoleOfficeReviewer})
		outsider, _ := d.account(t, "outsider", []string{server.RoleOfficeReviewer}, "school:"+otherSch)
		open, err := d.desk.OpenConflicts(t.Context(), reviewer, 0)
		if err != nil || len(open) != 1 || open[0].Field != "title" || len(open[0].Versions) != 2 {
			t.Fatalf("open conflicts: %+v %v", open, err)
		}
		if others, _ := d.desk.OpenConflicts(t.Context(), outsider, 0); len(others) != 0 {
			t.Errorf("an account scoped elsewhere sees %d conflicts", len(others))
		}
		ctx := server.WithPrincipal(t.Context(), outsider)
		if _, err := d.desk.ResolveConflict(ctx, outsider, open[0].ID, jsonOf(t, "x"), "理由"); syncproto.ErrorCode(err) != syncproto.EFORBIDDEN {
			t.Errorf("resolved out of scope: %v", err)
		}
		ctx = server.WithPrincipal(t.Context(), reviewer)
		if _, err := d.desk.ResolveConflict(ctx, reviewer, open[0].ID, jsonOf(t, "x"), ""); syncproto.ErrorCode(err) != syncproto.EINVALID {
			t.Errorf("resolved without a reason: %v", err)
		}
		d.now = d.now.Add(time.Minute)
		if _, err := d.desk.ResolveConflict(ctx, reviewer, open[0].ID, jsonOf(t, "厕所地面湿滑"), "两人描述同一隐患"); err != nil {
			t.Fatal(err)
		}
		r, _ := d.syncer.Record(t.Context(), deskSchool, id)
		if got := string(r.Value("title")); got != `"厕所地面湿滑"` || len(r.ConflictFields()) != 0 || len(r.Conflicts) != 2 {
			t.Errorf("after the resolution: title %s, in conflict %v, log %d", got, r.ConflictFields(), len(r.Conflicts))
		}
		if left, _ := d.desk.OpenConflicts(t.Context(), reviewer, 0); len(left) != 0 {
			t.Errorf("still open: %+v", left)
		}
		row, _ := st.Console.Hazard(t.Context(), id.String())
		if row.Title != "厕所地面湿滑" {
			t.Errorf("read model title %q", row.Title)
		}
		if _, err := d.desk.ResolveConflict(ctx, reviewer, open[0].ID, jsonOf(t, "y"), "again"); syncproto.ErrorCode(err) != syncproto.ECONFLICT {
			t.Errorf("resolved twice: %v", err)
		}
	})
}

// TestDeskReviewVisit: submitted → returned (comment required) →
// edited by the author (submitted again) → accepted; the comments are
// items the phone pulls; a phone may not write a decision.
func TestDeskReviewVisit(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		d := newDesk(t, st)
		d.school(t, deskSchool, "东河县第二初级中学", deskZone)
		ph := newDeskPhone()
		ph.w.Now = d.now
		id := uuid.Must(uuid.NewV7())
		r := &syncproto.Record{ID: id, Kind: "visit", SchoolID: deskSchool, CreatedAt: d.now, CreatedBy: ph.p.UserID}
		r, _ = syncproto.Set(r, "visit_date", jsonOf(t, d.now.In(syncproto.ChinaTime).Format(time.DateOnly)), ph.w)
		r, _ = syncproto.Set(r, "summary", jsonOf(t, "课堂秩序良好"), ph.w)
		d.push(t, ph.p, r, syncproto.Vector{})
		d.pull(t, ph, id)
		reviewer, _ := d.account(t, "reviewer", []string{server.RoleOfficeReviewer})
		ctx := server.WithPrincipal(t.Context(), reviewer)
		state := func() string {
			t.Helper()
			rows, err := st.Console.Records(t.Context(), server.RecordFilter{AllSchools: true, Kind: "visit"})
			if err != nil || len(rows) != 1 {
				t.Fatalf("record rows %+v %v", rows, err)
			}
			rec, _ := d.syncer.Record(t.Context(), deskSchool, id)
			if got := server.FoldReview(rec).State; got != rows[0].ReviewState {
				t.Errorf("read model %s, fold %s", rows[0].ReviewState, got)
			}
			return rows[0].ReviewState
		}
		if got := state(); got != server.ReviewSubmitted {
			t.Fatalf("new visit: %s", got)
		}
		// The same day at the school: a lesson observation and a hazard.
		lo := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "lesson_observation", SchoolID: deskSchool, CreatedAt: d.now, CreatedBy: ph.p.UserID}
		lo, _ = syncproto.Set(lo, "subject", jsonOf(t, "数学"), ph.w)
		lo, _ = syncproto.Set(lo, "total_score", jsonOf(t, 86), ph.w)
		lo, _ = syncproto.Set(lo, "grade_band", jsonOf(t, "良好"), ph.w)
		d.push(t, ph.p, lo, syncproto.Vector{})
		d.report(t, ph, "实验室灭火器缺失", "medium")
		if day, err := d.desk.VisitDay(t.Context(), server.Principal{}, r); err != nil || len(day) != 0 {
			t.Errorf("VisitDay for someone without a scope: %v items, %v", len(day), err)
		}
		vrec, _ := d.syncer.Record(t.Context(), deskSchool, id)
		day, err := d.desk.VisitDay(t.Context(), reviewer, vrec)
		var got []string
		for _, it := range day {
			got = append(got, it.Kind+":"+it.Title+":"+it.Detail)
		}
		slices.Sort(got)
		if err != nil || strings.Join(got, " | ") != "hazard:实验室灭火器缺失:已上报 | lesson_observation:数学:总分 86 良好" {
			t.Errorf("the visit's day: %q %v", got, err)
		}
		if _, err := d.desk.Review(ctx, reviewer, deskSchool, id, server.ReviewReturned, ""); syncproto.ErrorCode(err) != syncproto.EINVALID {
			t.Errorf("returned without a comment: %v", err)
		}
		d.now = d.now.Add(time.Minute)
		if _, err := d.desk.Review(ctx, reviewer, deskSchool, id, server.ReviewReturned, "请补充听课节数"); err != nil {
			t.Fatal(err)
		}
		if got := state(); got != server.ReviewReturned {
			t.Errorf("after returning: %s", got)
		}
		// The phone pulls the comment, edits, and may not accept itself.
		rec := d.pull(t, ph, id)
		if rs := server.FoldReview(rec); len(rs.Items) != 1 || rs.Items[0].Comment != "请补充听课节数" {
			t.Errorf("the phone's review items: %+v", rs.Items)
		}
		d.now = d.now.Add(time.Minute)
		ph.w.Now = d.now
		forged, _ := syncproto.Marshal(server.ReviewItem{Type: server.ReviewAccepted, ActorID: ph.p.UserID, ActorRole: server.RoleOfficeReviewer, OccurredAt: d.now})
		_, delta := syncproto.Append(rec, server.ReviewCollection, uuid.Must(uuid.NewV7()).String(), forged, ph.w)
		resp, err := d.syncer.Push(server.WithPrincipal(t.Context(), ph.p), ph.p, syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: ph.p.DeviceID,
			BatchID: uuid.Must(uuid.NewV7()), Changes: []syncproto.Change{{OpID: uuid.Must(uuid.NewV7()), Record: delta, Base: rec.Version()}}}, nil)
		if err != nil || resp.Results[0].Status != syncproto.StatusRejected || resp.Results[0].Error.Code != syncproto.EFORBIDDEN {
			t.Errorf("a phone's own acceptance: %+v %v", resp, err)
		}
		_, delta = syncproto.Set(rec, "summary", jsonOf(t, "课堂秩序良好；听课2节"), ph.w)
		d.push(t, ph.p, delta, rec.Version())
		if got := state(); got != server.ReviewSubmitted {
			t.Errorf("after the author's edit: %s", got)
		}
		d.now = d.now.Add(time.Minute)
		if _, err := d.desk.Review(ctx, reviewer, deskSchool, id, server.ReviewAccepted, ""); err != nil {
			t.Fatal(err)
		}
		if got := state(); got != server.ReviewAccepted {
			t.Errorf("after accepting: %s", got)
		}
		if _, err := d.desk.Review(ctx, reviewer, deskSchool, id, server.ReviewReturned, "再退回"); syncproto.ErrorCode(err) != syncproto.ECONFLICT {
			t.Errorf("returning an accepted visit: %v", err)
		}
	})
}
