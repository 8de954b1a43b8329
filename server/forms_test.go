package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The forms tests run on the in-memory stores and on the real FerretDB
// (testenv.ForEachStore), wired as fieldsyncd wires them
// (server/cmd/fieldsyncd/wire.go): the change-log store, the Syncer with
// the FormValidator plugged in, and the forms service writing form records
// through the same Syncer.

// formsToday is the office's date the validator gives the forms' rules.
const formsToday = "2024-11-15"

var (
	admin      = server.Principal{UserID: "admin", Roles: []string{server.RoleAdmin}}
	officeHead = server.Principal{UserID: "0192b000-0000-7000-8000-0000000002a1", Roles: []string{server.RoleOfficeHead}}
	inspector  = server.Principal{
		DeviceID:    uuid.MustParse("0192b000-0000-7000-8000-00000000d001"),
		UserID:      "0192b000-0000-7000-8000-000000000211",
		InspectorID: "0192b000-0000-7000-8000-000000000201",
		Roles:       []string{server.RoleInspector},
		Replica:     uuid.MustParse("0192b000-0000-7000-8000-00000000d001"),
	}
	// school is the samples' boarding junior school, assigned to inspector.
	school = "0192b000-0000-7000-8000-000000000103"
)

type formsEnv struct {
	syncer    *server.Syncer
	validator *server.FormValidator
	forms     *server.Forms
}

// forEachFormsEnv runs test on each store backend.
func forEachFormsEnv(t *testing.T, test func(t *testing.T, env *formsEnv)) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) { test(t, newFormsEnv(st.Sync)) })
}

func newFormsEnv(store server.SyncStore) *formsEnv {
	syncer := server.NewSyncer(store, uuid.Must(uuid.NewV7()))
	syncer.Access.Assigned = func(_ context.Context, id string) ([]string, error) {
		if id == inspector.InspectorID {
			return []string{school}, nil
		}
		return nil, nil
	}
	v := server.NewFormValidator(syncer, func() string { return formsToday })
	syncer.Validator = v
	return &formsEnv{syncer: syncer, validator: v, forms: server.NewForms(syncer, v, syncer.Replica)}
}

// canteenForm is an office questionnaire about a school canteen, a
// definition the office could publish.
func canteenForm(version int) *forms.Definition {
	five, one := 5.0, 1.0
	return &forms.Definition{
		ID: "survey.canteen", Version: version, Kind: forms.KindVisit,
		Title: forms.Text{ZH: "食堂检查", EN: "Canteen check"},
		Fields: []forms.Field{
			{Key: "visit_date", Type: forms.TypeDate, Required: true, Label: forms.Text{ZH: "日期"}},
			{Key: "hygiene", Type: forms.TypeInteger, Required: true, Label: forms.Text{ZH: "卫生评分"},
				Constraints: []forms.Constraint{{Min: &one, Max: &five}}},
			{Key: "licence_on_wall", Type: forms.TypeBoolean, Label: forms.Text{ZH: "许可证上墙"}},
			{Key: "problems", Type: forms.TypeText, RequiredIf: "hygiene < 3", Label: forms.Text{ZH: "问题"}},
		},
	}
}

// errorFields returns the field keys of err's *syncproto.Error, sorted.
func errorFields(err error) []string {
	var e *syncproto.Error
	if !errors.As(err, &e) {
		return nil
	}
	return slices.Sorted(maps.Keys(e.Fields))
}

func TestPublishForm(t *testing.T) { forEachFormsEnv(t, testPublishForm) }

func testPublishForm(t *testing.T, env *formsEnv) {
	ctx := t.Context()

	fv, err := env.forms.Publish(ctx, admin, canteenForm(1))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	want := server.FormVersion{ID: "survey.canteen", Version: 1, Title: forms.Text{ZH: "食堂检查", EN: "Canteen check"}, Kind: forms.KindVisit, Status: forms.StatusPublished}
	if fv != want {
		t.Errorf("Publish = %+v, want %+v", fv, want)
	}
	rec, err := env.syncer.Record(ctx, server.RefScope, server.FormRecordID("survey.canteen", 1))
	if err != nil {
		t.Fatalf("the form record is not in the reference scope: %v", err)
	}
	if rec.Kind != server.FormKind || rec.SchoolID != "" || rec.Rev != 1 {
		t.Errorf("form record: kind %q school %q rev %d, want %q, no school, rev 1", rec.Kind, rec.SchoolID, rec.Rev, server.FormKind)
	}

	tests := []struct {
		name      string
		p         server.Principal
		def       func() *forms.Definition
		code      string   // "" for success
		fields    []string // the field keys of the error
		published bool     // the version is listed after the call
	}{
		{name: "SameContentAgain", p: admin, def: func() *forms.Definition { return canteenForm(1) }},
		{name: "SameContentAgainByOfficeHead", p: officeHead, def: func() *forms.Definition { return canteenForm(1) }},
		{name: "SameContentStatusIgnored", p: admin, def: func() *forms.Definition {
			d := canteenForm(1)
			d.Status = forms.StatusDraft
			return d
		}},
		{name: "OtherContent", p: admin, code: syncproto.ECONFLICT, def: func() *forms.Definition {
			d := canteenForm(1)
			d.Title.ZH = "食堂卫生检查"
			return d
		}},
		{name: "NextVersion", p: officeHead, published: true, def: func() *forms.Definition {
			d := canteenForm(2)
			d.Title.ZH = "食堂卫生检查"
			return d
		}},
		{name: "BuiltinID", p: admin, code: syncproto.EINVALID, fields: []string{"id"}, def: func() *forms.Definition {
			d := canteenForm(9)
			d.ID = "visit.routine"
			return d
		}},
		{name: "UnknownFieldType", p: admin, code: syncproto.EINVALID, fields: []string{"fields[1].type"}, def: func() *forms.Definition {
			d := canteenForm(3)
			d.Fields[1].Type = "slider"
			return d
		}},
		{name: "DuplicateKeys", p: admin, code: syncproto.EINVALID, fields: []string{"fields[2].key"}, def: func() *forms.Definition {
			d := canteenForm(3)
			d.Fields[2].Key = "visit_date"
			return d
		}},
		{name: "BadExpression", p: admin, code: syncproto.EINVALID, fields: []string{"fields[3].required_if"}, def: func() *forms.Definition {
			d := canteenForm(3)
			d.Fields[3].RequiredIf = "hygiene <"
			return d
		}},
		{name: "UnknownFieldInExpression", p: admin, code: syncproto.EINVALID, fields: []string{"fields[3].required_if"}, def: func() *forms.Definition {
			d := canteenForm(3)
			d.Fields[3].RequiredIf = "cleanliness < 3"
			return d
		}},
		{name: "Inspector", p: inspector, code: syncproto.EFORBIDDEN, def: func() *forms.Definition { return canteenForm(3) }},
		{name: "Nobody", p: server.Principal{}, code: syncproto.EFORBIDDEN, def: func() *forms.Definition { return canteenForm(3) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := tt.def()
			fv, err := env.forms.Publish(ctx, tt.p, def)
			if got := syncproto.ErrorCode(err); got != tt.code {
				t.Fatalf("Publish: code %q (%v), want %q", got, err, tt.code)
			}
			if tt.code == "" {
				if fv.ID != def.ID || fv.Version != def.Version || fv.Status != forms.StatusPublished {
					t.Errorf("Publish = %+v", fv)
				}
			}
			if got := errorFields(err); !slices.Equal(got, tt.fields) {
				t.Errorf("error fields = %v (%v), want %v", got, err, tt.fields)
			}
			_, _, gerr := env.forms.Get(ctx, def.ID, def.Version)
			switch {
			case tt.code == "" && gerr != nil:
				t.Errorf("Get after publishing: %v", gerr)
			case tt.code != "" && tt.code != syncproto.ECONFLICT && def.ID != "visit.routine" && syncproto.ErrorCode(gerr) != syncproto.ENOTFOUND:
				t.Errorf("Get after a refused publish = %v, want not_found", gerr)
			}
		})
	}

	// Version 1 was never written again: the refused and the repeated
	// publishes left its record alone.
	rec, err = env.syncer.Record(ctx, server.RefScope, server.FormRecordID("survey.canteen", 1))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Rev != 1 {
		t.Errorf("form record rev %d after repeated publishes, want 1", rec.Rev)
	}
	def, retired, err := env.forms.Get(ctx, "survey.canteen", 1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if retired || def.Title.ZH != "食堂检查" || def.Status != forms.StatusPublished || len(def.Fields) != 4 {
		t.Errorf("Get = %+v retired=%v, want the first content, published", def, retired)
	}
	if got, want := mustJSON(t, def), mustJSON(t, withStatus(canteenForm(1), forms.StatusPublished)); got != want {
		t.Errorf("Get returned\n%s\nwant what was published\n%s", got, want)
	}

	list, err := env.forms.List(ctx, admin)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var published []server.FormVersion
	builtins := 0
	for _, f := range list {
		if f.Builtin {
			builtins++
			continue
		}
		published = append(published, f)
	}
	if builtins != len(forms.Builtin()) {
		t.Errorf("List has %d built-in forms, want %d", builtins, len(forms.Builtin()))
	}
	wantList := []server.FormVersion{
		{ID: "survey.canteen", Version: 1, Title: forms.Text{ZH: "食堂检查", EN: "Canteen check"}, Kind: forms.KindVisit, Status: forms.StatusPublished},
		{ID: "survey.canteen", Version: 2, Title: forms.Text{ZH: "食堂卫生检查", EN: "Canteen check"}, Kind: forms.KindVisit, Status: forms.StatusPublished},
	}
	if !slices.Equal(published, wantList) {
		t.Errorf("published forms listed:\n%+v\nwant\n%+v", published, wantList)
	}
	if !slices.IsSortedFunc(list, func(a, b server.FormVersion) int {
		if a.ID != b.ID {
			return cmpString(a.ID, b.ID)
		}
		return a.Version - b.Version
	}) {
		t.Errorf("List is not sorted by id and version: %+v", list)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func withStatus(d *forms.Definition, status string) *forms.Definition {
	d.Status = status
	return d
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := syncproto.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// phone writes records the way the inspector's phone does.
type phone struct {
	w *syncproto.Writer
}

func newPhone() *phone {
	return &phone{w: &syncproto.Writer{Replica: inspector.DeviceID, Author: inspector.UserID, Now: time.Date(2024, 11, 15, 9, 30, 0, 0, time.UTC)}}
}

// record returns a new record of the form version with the given values.
func (ph *phone) record(t *testing.T, kind, formID string, version int, values map[string]any) *syncproto.Record {
	t.Helper()
	r := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: kind, SchoolID: school, FormID: formID, FormVersion: version,
		CreatedAt: ph.w.Now, CreatedBy: inspector.UserID}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		raw, err := syncproto.Marshal(values[k])
		if err != nil {
			t.Fatal(err)
		}
		r, _ = syncproto.Set(r, k, raw, ph.w)
	}
	return r
}

// push pushes records as the inspector's device, one change each, and
// returns the results.
func push(t *testing.T, s *server.Syncer, recs ...*syncproto.Record) []syncproto.Result {
	t.Helper()
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: inspector.DeviceID, BatchID: uuid.Must(uuid.NewV7())}
	for _, r := range recs {
		req.Changes = append(req.Changes, syncproto.Change{OpID: uuid.Must(uuid.NewV7()), Record: r})
	}
	resp, err := s.Push(t.Context(), inspector, req, nil)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	return resp.Results
}

// sampleRecord returns a domain sample as the phone's record, after edit
// changes its values.
func sampleRecord(t *testing.T, ph *phone, name string, edit func(values map[string]any)) *syncproto.Record {
	t.Helper()
	s, err := samples.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(s.Values)
	}
	r, err := s.Record(ph.w)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPushedRecordsAreValidatedAgainstTheirForm(t *testing.T) {
	forEachFormsEnv(t, testPushedRecordsAreValidatedAgainstTheirForm)
}

func testPushedRecordsAreValidatedAgainstTheirForm(t *testing.T, env *formsEnv) {
	ctx := t.Context()
	for _, v := range []int{1, 2} {
		if _, err := env.forms.Publish(ctx, admin, canteenForm(v)); err != nil {
			t.Fatalf("Publish v%d: %v", v, err)
		}
	}
	if err := env.forms.Retire(ctx, admin, "survey.canteen", 1); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	ph := newPhone()
	good := map[string]any{"visit_date": "2024-11-15", "hygiene": 4, "licence_on_wall": true}

	tests := []struct {
		name   string
		record func(t *testing.T) *syncproto.Record
		status string
		code   string            // of a rejection
		fields map[string]string // of a rejection: key → a message; "" accepts any
		flags  []string          // of the stored record
	}{
		{name: "PublishedVersion", status: syncproto.StatusApplied,
			record: func(t *testing.T) *syncproto.Record { return ph.record(t, "visit", "survey.canteen", 2, good) }},
		{name: "RetiredVersionIsFlagged", status: syncproto.StatusApplied, flags: []string{server.FlagRetiredForm},
			record: func(t *testing.T) *syncproto.Record { return ph.record(t, "visit", "survey.canteen", 1, good) }},
		{name: "UnknownVersion", status: syncproto.StatusRejected, code: syncproto.EINVALID,
			fields: map[string]string{"form_version": "form survey.canteen version 3 is not published"},
			record: func(t *testing.T) *syncproto.Record { return ph.record(t, "visit", "survey.canteen", 3, good) }},
		{name: "UnknownForm", status: syncproto.StatusRejected, code: syncproto.EINVALID, fields: map[string]string{"form_version": ""},
			record: func(t *testing.T) *syncproto.Record { return ph.record(t, "visit", "survey.kitchen", 1, good) }},
		{name: "KindNotTheForms", status: syncproto.StatusRejected, code: syncproto.EINVALID, fields: map[string]string{"kind": ""},
			record: func(t *testing.T) *syncproto.Record { return ph.record(t, "hazard", "survey.canteen", 2, good) }},
		{name: "FailsTheRules", status: syncproto.StatusRejected, code: syncproto.EINVALID,
			fields: map[string]string{"hygiene": "", "problems": "此项必填", "weather": "表单中没有此项"},
			record: func(t *testing.T) *syncproto.Record {
				return ph.record(t, "visit", "survey.canteen", 2, map[string]any{"visit_date": "2024-11-15", "hygiene": 0, "weather": "晴"})
			}},
		{name: "RetiredVersionStillValidated", status: syncproto.StatusRejected, code: syncproto.EINVALID, fields: map[string]string{"visit_date": "此项必填"},
			record: func(t *testing.T) *syncproto.Record {
				return ph.record(t, "visit", "survey.canteen", 1, map[string]any{"hygiene": 5})
			}},
		{name: "BuiltinSample", status: syncproto.StatusApplied,
			record: func(t *testing.T) *syncproto.Record { return sampleRecord(t, ph, "07_lesson_observation", nil) }},
		{name: "BuiltinScoreAboveMax", status: syncproto.StatusRejected, code: syncproto.EINVALID,
			fields: map[string]string{"scores[1].score": "不能超过该项满分"},
			record: func(t *testing.T) *syncproto.Record {
				return sampleRecord(t, ph, "07_lesson_observation", func(v map[string]any) {
					v["id"] = uuid.Must(uuid.NewV7()).String()
					v["scores"].([]any)[1].(map[string]any)["score"] = "21"
					v["total_score"] = "85"
				})
			}},
		{name: "RecordWithoutForm", status: syncproto.StatusApplied,
			record: func(t *testing.T) *syncproto.Record {
				return ph.record(t, "note", "", 0, map[string]any{"text": "无表单"})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.record(t)
			res := push(t, env.syncer, r)[0]
			if res.Status != tt.status {
				t.Fatalf("status %q (%v), want %q", res.Status, res.Error, tt.status)
			}
			if tt.status == syncproto.StatusRejected {
				if res.Error == nil || res.Error.Code != tt.code {
					t.Fatalf("error %v, want code %q", res.Error, tt.code)
				}
				if got, want := slices.Sorted(maps.Keys(res.Error.Fields)), slices.Sorted(maps.Keys(tt.fields)); !slices.Equal(got, want) {
					t.Errorf("error fields %v, want %v (%v)", got, want, res.Error)
				}
				for k, msg := range tt.fields {
					if msg != "" && res.Error.Fields[k] != msg {
						t.Errorf("fields[%s] = %q, want %q", k, res.Error.Fields[k], msg)
					}
				}
				if _, err := env.syncer.Record(ctx, school, r.ID); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
					t.Errorf("a rejected record was stored (Record: %v)", err)
				}
				return
			}
			stored, err := env.syncer.Record(ctx, school, r.ID)
			if err != nil {
				t.Fatalf("the applied record is not stored: %v", err)
			}
			if !slices.Equal(stored.Flags, tt.flags) {
				t.Errorf("flags %v, want %v", stored.Flags, tt.flags)
			}
		})
	}
}

// TestRetire covers retiring and what the forms API then says.
func TestRetire(t *testing.T) { forEachFormsEnv(t, testRetire) }

func testRetire(t *testing.T, env *formsEnv) {
	ctx := t.Context()
	if _, err := env.forms.Publish(ctx, admin, canteenForm(1)); err != nil {
		t.Fatal(err)
	}
	// A phone already validated against it: the validator caches it.
	ph := newPhone()
	if res := push(t, env.syncer, ph.record(t, "visit", "survey.canteen", 1, map[string]any{"visit_date": "2024-11-14", "hygiene": 3})); res[0].Status != syncproto.StatusApplied {
		t.Fatalf("push before retiring: %+v", res[0])
	}

	tests := []struct {
		name    string
		p       server.Principal
		id      string
		version int
		code    string
	}{
		{"Inspector", inspector, "survey.canteen", 1, syncproto.EFORBIDDEN},
		{"NotPublished", admin, "survey.canteen", 2, syncproto.ENOTFOUND},
		{"Builtin", admin, "visit.routine", 1, syncproto.ENOTFOUND},
		{"Published", officeHead, "survey.canteen", 1, ""},
		{"Again", admin, "survey.canteen", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := syncproto.ErrorCode(env.forms.Retire(ctx, tt.p, tt.id, tt.version)); got != tt.code {
				t.Errorf("Retire: code %q, want %q", got, tt.code)
			}
		})
	}

	_, retired, err := env.forms.Get(ctx, "survey.canteen", 1)
	if err != nil || !retired {
		t.Errorf("Get after Retire: retired=%v, %v; want retired", retired, err)
	}
	list, err := env.forms.List(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(f server.FormVersion) bool { return f.ID == "survey.canteen" })
	if i < 0 || list[i].Status != forms.StatusRetired || list[i].Version != 1 {
		t.Errorf("List after Retire: %+v, want survey.canteen v1 retired", list)
	}
	// Publishing the retired version again with the same content is a
	// no-op that says it is retired; it does not bring it back.
	fv, err := env.forms.Publish(ctx, admin, canteenForm(1))
	if err != nil || fv.Status != forms.StatusRetired {
		t.Errorf("Publish of a retired version = %+v, %v; want status retired, no error", fv, err)
	}
	// The cache was dropped at once: the next record is flagged.
	r := ph.record(t, "visit", "survey.canteen", 1, map[string]any{"visit_date": "2024-11-15", "hygiene": 4})
	if res := push(t, env.syncer, r); res[0].Status != syncproto.StatusApplied {
		t.Fatalf("push after retiring: %+v", res[0])
	}
	stored, err := env.syncer.Record(ctx, school, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(stored.Flags, server.FlagRetiredForm) {
		t.Errorf("flags %v, want %s", stored.Flags, server.FlagRetiredForm)
	}

	// Another process's validator sees the retirement too (it has no
	// cache yet); so does this one's after the cache TTL.
	other := server.NewFormValidator(env.syncer, func() string { return formsToday })
	if _, retired, err := other.Definition(ctx, "survey.canteen", 1); err != nil || !retired {
		t.Errorf("another validator: retired=%v, %v; want retired", retired, err)
	}
}

// TestPublishedFormReachesPhones checks that a published form is a
// reference record a device pulls.
func TestPublishedFormReachesPhones(t *testing.T) { forEachFormsEnv(t, testPublishedFormReachesPhones) }

func testPublishedFormReachesPhones(t *testing.T, env *formsEnv) {
	ctx := t.Context()
	if _, err := env.forms.Publish(ctx, admin, canteenForm(1)); err != nil {
		t.Fatal(err)
	}
	resp, err := env.syncer.Pull(ctx, inspector, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion}, syncproto.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(resp.Records, func(r *syncproto.Record) bool { return r.ID == server.FormRecordID("survey.canteen", 1) })
	if i < 0 {
		t.Fatalf("pull did not bring the form: %d records", len(resp.Records))
	}
	var def forms.Definition
	if err := json.Unmarshal(resp.Records[i].Value("definition"), &def); err != nil {
		t.Fatal(err)
	}
	if def.ID != "survey.canteen" || def.Version != 1 || def.Status != forms.StatusPublished {
		t.Errorf("pulled definition %s v%d %s", def.ID, def.Version, def.Status)
	}
	if err := def.Check(); err != nil {
		t.Errorf("the pulled definition does not check on the phone: %v", err)
	}
}

// slowReads holds each Record read until a second one has arrived, or
// 300 ms have passed: two publishes that run at once both read before
// either writes, unless Publish keeps them apart.
type slowReads struct {
	server.SyncService
	mu   sync.Mutex
	n    int
	both chan struct{}
}

func (s *slowReads) Record(ctx context.Context, scope string, id uuid.UUID) (*syncproto.Record, error) {
	r, err := s.SyncService.Record(ctx, scope, id)
	s.mu.Lock()
	if s.n++; s.n == 2 {
		close(s.both)
	}
	s.mu.Unlock()
	select {
	case <-s.both:
	case <-time.After(300 * time.Millisecond):
	}
	return r, err
}

// TestPublishSameVersionConcurrently publishes two contents of one
// version at once: one wins, the other is told so, and the published
// content is the winner's, never silently replaced.
func TestPublishSameVersionConcurrently(t *testing.T) {
	forEachFormsEnv(t, testPublishSameVersionConcurrently)
}

func testPublishSameVersionConcurrently(t *testing.T, env *formsEnv) {
	ctx := t.Context()
	f := server.NewForms(&slowReads{SyncService: env.syncer, both: make(chan struct{})}, env.validator, env.syncer.Replica)
	defs := []*forms.Definition{canteenForm(1), canteenForm(1)}
	defs[1].Title.ZH = "食堂卫生检查"
	errs := make([]error, len(defs))
	var wg sync.WaitGroup
	for i, d := range defs {
		wg.Go(func() { _, errs[i] = f.Publish(ctx, admin, d) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch syncproto.ErrorCode(err) {
		case "":
			if won >= 0 {
				t.Fatalf("both publishes succeeded")
			}
			won = i
		case syncproto.ECONFLICT:
		default:
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatalf("no publish succeeded: %v", errs)
	}
	def, _, err := env.forms.Get(ctx, "survey.canteen", 1)
	if err != nil {
		t.Fatal(err)
	}
	if def.Title != defs[won].Title {
		t.Errorf("published title %v, but the publish that succeeded sent %v", def.Title, defs[won].Title)
	}
	rec, err := env.syncer.Record(ctx, server.RefScope, server.FormRecordID("survey.canteen", 1))
	if err != nil {
		t.Fatal(err)
	}
	if c := rec.ConflictFields(); len(c) > 0 {
		t.Errorf("the form record holds concurrent versions of %v", c)
	}
}

// failingReader is a RecordReader whose store is down.
type failingReader struct{ err error }

func (f failingReader) Record(context.Context, string, uuid.UUID) (*syncproto.Record, error) {
	return nil, f.err
}

// TestValidateRecordStoreDown runs without servers: a store failure while
// reading a published form is not the record's fault, and its text does
// not reach the phone.
func TestValidateRecordStoreDown(t *testing.T) {
	down := errors.New("mongo: find log_ref: dial tcp 10.0.0.5:27017: connection refused")
	v := server.NewFormValidator(failingReader{fmt.Errorf("sync: record: %w", down)}, func() string { return formsToday })
	var logs strings.Builder
	v.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	r := newPhone().record(t, "visit", "survey.canteen", 1, map[string]any{"visit_date": "2024-11-15", "hygiene": 4})
	e := v.ValidateRecord(t.Context(), r)
	if e == nil || e.Code != syncproto.EUNAVAILABLE {
		t.Fatalf("ValidateRecord = %v, want code %s", e, syncproto.EUNAVAILABLE)
	}
	if strings.Contains(e.Error(), "10.0.0.5") || len(e.Fields) > 0 {
		t.Errorf("the phone is told %q", e.Error())
	}
	if !strings.Contains(logs.String(), "10.0.0.5") {
		t.Errorf("the store's error was not logged: %q", logs.String())
	}
	// A built-in form needs no store.
	ph := newPhone()
	if e := v.ValidateRecord(t.Context(), sampleRecord(t, ph, "07_lesson_observation", nil)); e != nil {
		t.Errorf("built-in sample with the store down: %v", e)
	}
}
