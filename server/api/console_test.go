package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/syncproto"
)

const (
	consoleSchool = "0192b000-0000-7000-8000-000000000103"
	consoleOther  = "0192b000-0000-7000-8000-000000000101"
	consoleZone   = "0192b000-0000-7000-8000-000000000c01"
)

// consoleStack is an API server with the console on real services.
type consoleStack struct {
	srv      *Server
	syncer   *server.Syncer
	accounts *server.Accounts
}

func newConsoleStack(t *testing.T, stores testenv.Stores) *consoleStack {
	t.Helper()
	devices := server.NewDevices(stores.Devices)
	syncer := server.NewSyncer(stores.Sync, uuid.Must(uuid.NewV7()))
	syncer.Access.Assigned = devices.Assigned
	syncer.Access.ZoneSchools = stores.Console.ZoneSchools
	audit := &server.Audit{Store: stores.Console, Now: syncer.Now}
	desk := &server.Desk{Sync: syncer, Access: syncer.Access, Read: stores.Console, Audit: audit, Now: syncer.Now}
	syncer.Stored = desk.Stored
	accounts := server.NewAccounts(stores.Console)
	rep := reports.NewService(stores.Sync.(reports.Store), stores.Devices, syncer.Access, syncer, syncer.Replica)
	srv, logs := newTestServer(t, Config{AdminToken: stackAdminToken}, Deps{Devices: devices, Sync: syncer, Accounts: accounts, Desk: desk, Audit: audit, Reports: rep})
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range logs.lines(t, "internal error") {
				t.Log(l)
			}
		}
	})
	return &consoleStack{srv: srv, syncer: syncer, accounts: accounts}
}

// browser is a signed-in session: its cookie and CSRF token.
type browser struct {
	cookie, csrf string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (cs *consoleStack) send(t *testing.T, b browser, method, path string, form url.Values) (int, http.Header, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.cookie != "" {
		req.Header.Set("Cookie", b.cookie)
	}
	resp, err := cs.srv.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(out)
}

// signIn signs in through the login form and returns the browser.
func (cs *consoleStack) signIn(t *testing.T, login, password string) (browser, http.Header) {
	t.Helper()
	status, hdr, body := cs.send(t, browser{}, http.MethodGet, "/console/login", nil)
	if status != 200 {
		t.Fatalf("login page: %d", status)
	}
	m := csrfField.FindStringSubmatch(body)
	loginCookie := strings.Split(hdr.Get("Set-Cookie"), ";")[0]
	status, hdr, body = cs.send(t, browser{cookie: loginCookie}, http.MethodPost, "/console/login",
		url.Values{"csrf": {m[1]}, "login": {login}, "password": {password}})
	if status != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d %s", login, status, body)
	}
	var b browser
	for _, c := range hdr.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") {
			b.cookie = strings.Split(c, ";")[0]
		}
	}
	_, _, page := cs.send(t, b, http.MethodGet, "/console/password", nil)
	if m := csrfField.FindStringSubmatch(page); m != nil {
		b.csrf = m[1]
	}
	return b, hdr
}

// seedHazard pushes a school and a hazard reported there as the admin
// token's automation, and returns the hazard's id.
func (cs *consoleStack) seedHazard(t *testing.T, school, zone string) (string, string) {
	t.Helper()
	admin := server.Principal{UserID: "admin", Roles: []string{server.RoleAdmin}, Automation: true}
	w := &syncproto.Writer{Replica: uuid.Must(uuid.NewV7()), Author: "admin", Now: time.Now()}
	sc := &syncproto.Record{ID: uuid.MustParse(school), Kind: "school", CreatedAt: w.Now}
	sc, _ = syncproto.Set(sc, "name", []byte(`"学校`+school[len(school)-3:]+`"`), w)
	sc, _ = syncproto.Set(sc, "zone_id", []byte(`"`+zone+`"`), w)
	hz := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "hazard", SchoolID: school, CreatedAt: w.Now, CreatedBy: "u1"}
	hz, _ = syncproto.Set(hz, "title", []byte(`"楼梯扶手松动"`), w)
	hz, _ = syncproto.Set(hz, "severity", []byte(`"medium"`), w)
	vi := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "visit", SchoolID: school, CreatedAt: w.Now, CreatedBy: "u1"}
	vi, _ = syncproto.Set(vi, "visit_date", []byte(`"`+w.Now.In(syncproto.ChinaTime).Format(time.DateOnly)+`"`), w)
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: w.Replica, BatchID: uuid.Must(uuid.NewV7()),
		Changes: []syncproto.Change{{OpID: uuid.Must(uuid.NewV7()), Record: sc}, {OpID: uuid.Must(uuid.NewV7()), Record: hz},
			{OpID: uuid.Must(uuid.NewV7()), Record: vi}}}
	resp, err := cs.syncer.Push(server.WithPrincipal(context.Background(), admin), admin, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if r.Status == syncproto.StatusRejected {
			t.Fatalf("seed: %v", r.Error)
		}
	}
	return hz.ID.String(), vi.ID.String()
}

// TestConsoleAuthorization is the matrix: every console route × every
// role × a hazard in and out of the account's scope → the status.
func TestConsoleAuthorization(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, stores testenv.Stores) {
		cs := newConsoleStack(t, stores)
		in, visitIn := cs.seedHazard(t, consoleSchool, consoleZone)
		out, visitOut := cs.seedHazard(t, consoleOther, uuid.Must(uuid.NewV7()).String())
		type role struct {
			login string
			roles []string
			scope []string
		}
		roles := []role{
			{"inspector", []string{server.RoleInspector}, []string{consoleSchool}},
			{"reviewer", []string{server.RoleOfficeReviewer}, []string{"zone:" + consoleZone}},
			{"head", []string{server.RoleOfficeHead}, []string{consoleSchool}},
			{"admin", []string{server.RoleAdmin}, []string{consoleSchool}},
		}
		browsers := map[string]browser{}
		for _, r := range roles {
			acc := server.NewAccount{Login: r.login, Name: r.login, Password: "a long password", Roles: r.roles}
			for _, s := range r.scope {
				if z, ok := strings.CutPrefix(s, "zone:"); ok {
					acc.Zones = append(acc.Zones, z)
				} else {
					acc.Schools = append(acc.Schools, s)
				}
			}
			if _, err := cs.accounts.Create(t.Context(), acc); err != nil {
				t.Fatal(err)
			}
			b, hdr := cs.signIn(t, r.login, "a long password")
			browsers[r.login] = b
			// The session cookie: HttpOnly, Secure, SameSite=Strict.
			for _, c := range hdr.Values("Set-Cookie") {
				if strings.HasPrefix(c, sessionCookie+"=") {
					for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict"} {
						if !strings.Contains(strings.ToLower(c), strings.ToLower(attr)) {
							t.Errorf("session cookie %q lacks %s", c, attr)
						}
					}
				}
			}
		}
		note := func(b browser) url.Values {
			return url.Values{"csrf": {b.csrf}, "action": {server.ActNote}, "reason": {"看过了"}}
		}
		type route struct {
			name   string
			method string
			path   string
			form   func(b browser) url.Values
		}
		routes := []route{
			{"queue", http.MethodGet, "/console/hazards", nil},
			{"detail in", http.MethodGet, "/console/hazards/" + in, nil},
			{"detail out", http.MethodGet, "/console/hazards/" + out, nil},
			{"act in", http.MethodPost, "/console/hazards/" + in + "/act", note},
			{"act out", http.MethodPost, "/console/hazards/" + out + "/act", note},
			{"password page", http.MethodGet, "/console/password", nil},
			{"conflicts", http.MethodGet, "/console/conflicts", nil},
			{"records", http.MethodGet, "/console/records", nil},
			{"audit of a person", http.MethodGet, "/console/audit?actor=admin", nil},
			{"record in", http.MethodGet, "/console/records/" + consoleSchool + "/" + visitIn, nil},
			{"record out", http.MethodGet, "/console/records/" + consoleOther + "/" + visitOut, nil},
			{"comment in", http.MethodPost, "/console/records/" + consoleSchool + "/" + visitIn + "/review", func(b browser) url.Values {
				return url.Values{"csrf": {b.csrf}, "action": {"comment"}, "comment": {"请补充照片"}}
			}},
			{"comment out", http.MethodPost, "/console/records/" + consoleOther + "/" + visitOut + "/review", func(b browser) url.Values {
				return url.Values{"csrf": {b.csrf}, "action": {"comment"}, "comment": {"请补充照片"}}
			}},
			{"dashboard", http.MethodGet, "/console/reports?period=2024-10", nil},
			{"dashboard zone", http.MethodGet, "/console/reports?period=2024-10&zone=" + consoleZone, nil},
			{"dashboard source", http.MethodGet, "/console/reports/source?period=2024-10&row=school&id=" + consoleSchool + "&count=hazards_found", nil},
			{"dashboard source out", http.MethodGet, "/console/reports/source?period=2024-10&row=school&id=" + consoleOther + "&count=hazards_found", nil},
			{"ledger", http.MethodGet, "/console/reports/export/hazards?format=csv&period=2024-10", nil},
			{"ledger school out", http.MethodGet, "/console/reports/export/hazards?format=csv&period=2024-10&school=" + consoleOther, nil},
			{"resolve unknown", http.MethodPost, "/console/conflicts/resolve", func(b browser) url.Values {
				return url.Values{"csrf": {b.csrf}, "id": {in + "/title"}, "value": {`"x"`}, "reason": {"r"}}
			}},
		}
		want := map[string]map[string]int{
			"queue":             {"inspector": 200, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"detail in":         {"inspector": 200, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"detail out":        {"inspector": 403, "reviewer": 403, "head": 403, "admin": 403, "anonymous": 303},
			"act in":            {"inspector": 403, "reviewer": 303, "head": 303, "admin": 303, "anonymous": 401},
			"act out":           {"inspector": 403, "reviewer": 403, "head": 403, "admin": 403, "anonymous": 401},
			"password page":     {"inspector": 200, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"conflicts":         {"inspector": 200, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"resolve unknown":   {"inspector": 403, "reviewer": 404, "head": 404, "admin": 404, "anonymous": 401},
			"records":           {"inspector": 200, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"audit of a person": {"inspector": 403, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"record in":         {"inspector": 200, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"record out":        {"inspector": 403, "reviewer": 403, "head": 403, "admin": 403, "anonymous": 303},
			"comment in":        {"inspector": 403, "reviewer": 303, "head": 303, "admin": 303, "anonymous": 401},
			"comment out":       {"inspector": 403, "reviewer": 403, "head": 403, "admin": 403, "anonymous": 401},
			// The dashboard is the office's: the reports service's checks
			// (an inspector's console account sees none; a scoped account
			// its own schools).
			"dashboard":            {"inspector": 403, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"dashboard zone":       {"inspector": 403, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"dashboard source":     {"inspector": 403, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"dashboard source out": {"inspector": 403, "reviewer": 404, "head": 404, "admin": 404, "anonymous": 303},
			"ledger":               {"inspector": 403, "reviewer": 200, "head": 200, "admin": 200, "anonymous": 303},
			"ledger school out":    {"inspector": 403, "reviewer": 403, "head": 403, "admin": 403, "anonymous": 303},
		}
		for _, rt := range routes {
			for _, who := range []string{"inspector", "reviewer", "head", "admin", "anonymous"} {
				b := browsers[who]
				var f url.Values
				if rt.form != nil {
					f = rt.form(b)
				}
				status, _, body := cs.send(t, b, rt.method, rt.path, f)
				if status != want[rt.name][who] {
					t.Errorf("%s %s as %s = %d, want %d\n%.300s", rt.method, rt.name, who, status, want[rt.name][who], body)
				}
			}
		}
		// The dashboard draws its charts inline, every data point an
		// element of class "point".
		if _, _, body := cs.send(t, browsers["reviewer"], http.MethodGet, "/console/reports?period=2024-10", nil); !strings.Contains(body, "<svg") || !strings.Contains(body, `class="point"`) || !strings.Contains(body, `href="/console/reports"`) {
			t.Errorf("the dashboard has no charts with data points, or no nav link:\n%.500s", body)
		}
		for _, tc := range []struct {
			query  string
			status int
			text   string
		}{
			{"period=2024-2025-1", http.StatusOK, "2024-09-01 至 2025-01-31"},
			{"period=2024-13", http.StatusBadRequest, "a month is YYYY-MM"},
			{"period=2024-10&zone=nonsense", http.StatusBadRequest, "must be an id (UUID)"},
		} {
			if status, _, body := cs.send(t, browsers["reviewer"], http.MethodGet, "/console/reports?"+tc.query, nil); status != tc.status || !strings.Contains(body, tc.text) {
				t.Errorf("dashboard ?%s = %d, want %d with %q\n%.300s", tc.query, status, tc.status, tc.text, body)
			}
		}
		// The queue shows only what is in scope.
		_, _, body := cs.send(t, browsers["inspector"], http.MethodGet, "/console/hazards", nil)
		if !strings.Contains(body, in) || strings.Contains(body, out) {
			t.Errorf("the inspector's queue shows the wrong hazards")
		}
		// A person's trail: the admin token's seeding, in scope only.
		_, _, body = cs.send(t, browsers["head"], http.MethodGet, "/console/audit?actor=admin", nil)
		if !strings.Contains(body, short(in)) || strings.Contains(body, short(out)) {
			t.Errorf("the head's view of the admin token's trail shows the wrong records")
		}
		// A visit's page shows what was recorded at the school that day.
		_, _, body = cs.send(t, browsers["reviewer"], http.MethodGet, "/console/records/"+consoleSchool+"/"+visitIn, nil)
		if !strings.Contains(body, "当日在校记录") || !strings.Contains(body, "/console/hazards/"+in) {
			t.Errorf("the visit page does not list the day's hazard:\n%.3000s", body)
		}
		_, _, body = cs.send(t, browsers["inspector"], http.MethodGet, "/console/records", nil)
		if !strings.Contains(body, visitIn) || strings.Contains(body, visitOut) {
			t.Errorf("the inspector's records show the wrong visits")
		}
		// A post without the CSRF token, or with another session's, is
		// refused and changes nothing.
		rev := func() int64 {
			r, err := cs.syncer.Record(t.Context(), consoleSchool, uuid.MustParse(in))
			if err != nil {
				t.Fatal(err)
			}
			return r.Rev
		}
		before := rev()
		for name, csrf := range map[string]string{"none": "", "another session's": browsers["head"].csrf} {
			f := url.Values{"action": {server.ActConfirm}, "reason": {"属实"}}
			if csrf != "" {
				f.Set("csrf", csrf)
			}
			if status, _, _ := cs.send(t, browsers["reviewer"], http.MethodPost, "/console/hazards/"+in+"/act", f); status != http.StatusForbidden {
				t.Errorf("a post with %s CSRF token = %d, want 403", name, status)
			}
		}
		if status, _, _ := cs.send(t, browsers["reviewer"], http.MethodPost, "/console/logout-everywhere", url.Values{}); status != http.StatusForbidden {
			t.Errorf("sign-out everywhere without a CSRF token = %d, want 403", status)
		}
		if got := rev(); got != before {
			t.Errorf("refused posts changed the hazard: rev %d → %d", before, got)
		}
		// A refused transition says why, in Chinese, with the form kept.
		status, _, body := cs.send(t, browsers["reviewer"], http.MethodPost, "/console/hazards/"+in+"/act",
			url.Values{"csrf": {browsers["reviewer"].csrf}, "action": {server.ActClose}, "reason": {"消号理由"}})
		if status != http.StatusConflict || !strings.Contains(body, "不能消号") || !strings.Contains(body, "消号理由") {
			t.Errorf("closing a reported hazard = %d\n%.2000s", status, body)
		}
		// The JSON admin routes take the admin token, not a session.
		req := httptest.NewRequest(http.MethodGet, "/v1/admin/audit/verify", nil)
		req.Header.Set("Cookie", browsers["admin"].cookie)
		if resp, _ := cs.srv.Test(req, -1); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("audit verify with a session cookie = %d, want 401", resp.StatusCode)
		}
		req = httptest.NewRequest(http.MethodGet, "/v1/admin/audit/verify", nil)
		req.Header.Set("Authorization", "Bearer "+stackAdminToken)
		status, _, body = do(t, cs.srv, req)
		if status != 200 || !strings.Contains(body, `"ok":true`) {
			t.Errorf("audit verify = %d %s", status, body)
			all, _ := stores.Console.AuditRange(t.Context(), 0, 100)
			for _, e := range all {
				t.Logf("%+v", e)
			}
		}
		// Sign-out everywhere ends every session of the account.
		if status, _, _ := cs.send(t, browsers["reviewer"], http.MethodPost, "/console/logout-everywhere", url.Values{"csrf": {browsers["reviewer"].csrf}}); status != http.StatusSeeOther {
			t.Errorf("sign-out everywhere = %d", status)
		}
		if status, _, _ := cs.send(t, browsers["reviewer"], http.MethodGet, "/console/hazards", nil); status != http.StatusSeeOther {
			t.Errorf("the queue after sign-out everywhere = %d, want 303 to the sign-in page", status)
		}
	})
}

func TestCreateAccountRoute(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, stores testenv.Stores) {
		cs := newConsoleStack(t, stores)
		st := &stack{srv: cs.srv}
		r := st.mustDo(t, http.StatusCreated, request{method: http.MethodPost, path: "/v1/admin/accounts", token: stackAdminToken,
			json: map[string]any{"login": "chen", "name": "陈主任", "password": "a long password", "roles": []string{"office_head"}}})
		if !strings.Contains(string(r.body), `"login":"chen"`) || strings.Contains(string(r.body), "argon2") {
			t.Errorf("created: %s", r.body)
		}
		e := st.mustDo(t, http.StatusBadRequest, request{method: http.MethodPost, path: "/v1/admin/accounts", token: stackAdminToken,
			json: map[string]any{"login": "li", "name": "李", "password": "short", "roles": []string{"office_head"}}}).errorOf(t)
		if e.Fields["password"] == "" {
			t.Errorf("short password: %+v", e)
		}
		st.mustDo(t, http.StatusUnauthorized, request{method: http.MethodPost, path: "/v1/admin/accounts",
			json: map[string]any{"login": "x", "name": "x", "password": "a long password", "roles": []string{"admin"}}})
	})
}
