package api

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The office console: server-rendered pages (html/template) at /console/,
// with one small script and one stylesheet embedded in the binary. Every
// page works without JavaScript; forms post and the server answers with a
// page. Sessions are server-side: the cookie holds a random token whose
// hash is the session's id in the store; it is Secure, HttpOnly and
// SameSite=Strict, and every state-changing request carries the
// session's CSRF token in a form field (or the X-CSRF-Token header).
// What a person may see and do is decided in the domain (server.Access,
// server.Desk), the same for pages and JSON.
//
//	GET  /console/login, POST /console/login        sign in
//	POST /console/logout, /console/logout-everywhere
//	GET  /console/password, POST /console/password  change the password
//	GET  /console/hazards                           the queue
//	GET  /console/hazards/:id                       detail, timeline, photos
//	POST /console/hazards/:id/act                   a decision
//	GET  /console/photos/:sha/:variant              redirect to a presigned link
//	GET  /console/records                           records to review (visits, observations…)
//	GET  /console/records/:school/:id               a record, its comments, the review form
//	POST /console/records/:school/:id/review        return (with a comment), accept, comment
//	GET  /console/conflicts                         the conflict inbox
//	POST /console/conflicts/resolve                 choose a version or write a new value
//	GET  /console/reports                           the dashboard (dashboard.go)
//	GET  /console/audit?actor=ID                    what a person did (the audit log)
//	GET  /console/static/*                          the embedded assets

//go:embed consoleui
var consoleFS embed.FS

const (
	sessionCookie = "fs_session"
	loginCookie   = "fs_login" // the sign-in form's CSRF token (double submit)
	consoleForm   = 16 << 10   // the largest form a console page posts
)

var consoleTemplates = template.Must(template.New("console").Funcs(consoleFuncs(nil)).ParseFS(consoleFS, "consoleui/*.html"))

// routesConsole registers the console's pages.
func (s *Server) routesConsole() {
	s.app.Get("/console", func(c *fiber.Ctx) error { return c.Redirect("/console/hazards", http.StatusSeeOther) })
	s.app.Get("/console/static/*", s.handleConsoleStatic)
	s.app.Get("/console/login", s.handleLoginPage)
	s.app.Post("/console/login", s.body(consoleForm), s.handleLogin)
	g := s.app.Group("/console", s.consoleSession)
	g.Post("/logout", s.body(consoleForm), s.consoleCSRF, s.handleLogout)
	g.Post("/logout-everywhere", s.body(consoleForm), s.consoleCSRF, s.handleLogoutEverywhere)
	g.Get("/password", s.handlePasswordPage)
	g.Post("/password", s.body(consoleForm), s.consoleCSRF, s.handlePassword)
	g.Get("/hazards", s.handleHazards)
	g.Get("/hazards/:id", s.handleHazard)
	g.Post("/hazards/:id/act", s.body(consoleForm), s.consoleCSRF, s.handleHazardAct)
	g.Get("/photos/:sha/:variant", s.handleConsolePhoto)
	g.Get("/records", s.handleRecords)
	g.Get("/records/:school/:id", s.handleRecord)
	g.Post("/records/:school/:id/review", s.body(consoleForm), s.consoleCSRF, s.handleReview)
	g.Get("/conflicts", s.handleConflicts)
	g.Get("/audit", s.handlePersonAudit)
	g.Post("/conflicts/resolve", s.body(consoleForm), s.consoleCSRF, s.handleConsoleResolve)
	s.routesDashboard(g)
}

// routesAccounts registers the JSON routes of accounts and the audit log
// (admin token or an admin's session are not needed elsewhere).
func (s *Server) routesAccounts() {
	admin := s.app.Group("/v1/admin", s.adminOnly)
	admin.Post("/accounts", s.body(smallBodyMax), s.handleCreateAccount)
	admin.Get("/audit/verify", s.handleAuditVerify)
	admin.Post("/read-model/rebuild", s.body(smallBodyMax), s.handleRebuildReadModel)
}

// handleRebuildReadModel handles "POST /v1/admin/read-model/rebuild".
func (s *Server) handleRebuildReadModel(c *fiber.Ctx) error {
	if s.deps.Desk == nil || s.deps.Desk.Log == nil {
		return syncproto.Errorf(syncproto.EUNAVAILABLE, "The read model is not configured.")
	}
	rep, err := s.deps.Desk.RebuildReadModel(c.UserContext(), s.deps.Desk.Log)
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

// handleCreateAccount handles "POST /v1/admin/accounts".
func (s *Server) handleCreateAccount(c *fiber.Ctx) error {
	var in server.NewAccount
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	acc, err := s.deps.Accounts.Create(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(acc)
}

// handleAuditVerify handles "GET /v1/admin/audit/verify".
func (s *Server) handleAuditVerify(c *fiber.Ctx) error {
	if s.deps.Audit == nil {
		return syncproto.Errorf(syncproto.EUNAVAILABLE, "The audit log is not configured.")
	}
	rep, err := s.deps.Audit.Verify(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

// secureCookies reports whether the console's cookies must be Secure:
// always, unless Config.ConsoleLoopbackHTTP allows plain HTTP from a
// loopback address (tests, a laptop demo).
func (s *Server) secureCookies(c *fiber.Ctx) bool {
	if !s.cfg.ConsoleLoopbackHTTP {
		return true
	}
	ip := net.ParseIP(c.IP())
	return ip == nil || !ip.IsLoopback()
}

func (s *Server) setCookie(c *fiber.Ctx, name, value string, expires time.Time) {
	c.Cookie(&fiber.Cookie{
		Name: name, Value: value, Path: "/console", Expires: expires, Secure: s.secureCookies(c),
		HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
	})
}

func (s *Server) clearCookie(c *fiber.Ctx, name string) {
	s.setCookie(c, name, "", time.Unix(1, 0))
}

const localSession = "console_session"

// consoleSession is middleware: the request must carry a valid session
// cookie. Pages redirect to the sign-in page; posts get 401.
func (s *Server) consoleSession(c *fiber.Ctx) error {
	p, sess, err := s.deps.Accounts.Authenticate(c.UserContext(), strings.Clone(c.Cookies(sessionCookie)))
	if err != nil {
		if syncproto.ErrorCode(err) != syncproto.EUNAUTHORIZED {
			return err
		}
		if c.Method() == http.MethodGet {
			return c.Redirect("/console/login?next="+url.QueryEscape(c.OriginalURL()), http.StatusSeeOther)
		}
		return s.consoleError(c, http.StatusUnauthorized, err)
	}
	c.Locals(localSession, sess)
	c.SetUserContext(server.WithPrincipal(c.UserContext(), p))
	return c.Next()
}

func sessionOf(c *fiber.Ctx) server.Session {
	s, _ := c.Locals(localSession).(server.Session)
	return s
}

// form parses the url-encoded body of a console post.
func form(c *fiber.Ctx) url.Values {
	v, _ := url.ParseQuery(string(requestBody(c)))
	return v
}

// consoleCSRF is middleware: a post must carry the session's CSRF token.
func (s *Server) consoleCSRF(c *fiber.Ctx) error {
	tok := c.Get("X-CSRF-Token")
	if tok == "" {
		tok = form(c).Get("csrf")
	}
	if err := server.CheckCSRF(sessionOf(c), tok); err != nil {
		return s.consoleError(c, http.StatusForbidden, err)
	}
	return c.Next()
}

// page is what every console template gets.
type page struct {
	Title  string
	Me     *server.Principal
	CSRF   string
	Flash  string
	Error  string
	Fields map[string]string
	Login  string
	Next   string // the page to go to after signing in
}

func (s *Server) render(c *fiber.Ctx, status int, name string, data any, funcs template.FuncMap) error {
	// The parsed set is never executed, only its clones: a clone gets
	// the request's names.
	t, err := consoleTemplates.Clone()
	if err != nil {
		return err
	}
	if funcs != nil {
		t.Funcs(funcs)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	s.consoleHeaders(c)
	c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
	return c.Status(status).Send(b.Bytes())
}

func (s *Server) consoleHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "same-origin")
	c.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' http: https:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
}

// consoleError answers a refused console request with a short page.
func (s *Server) consoleError(c *fiber.Ctx, status int, err error) error {
	p := page{Title: "出错了", Error: syncproto.ErrorMessage(err)}
	if me, ok := server.PrincipalFrom(c.UserContext()); ok {
		p.Me, p.CSRF = &me, sessionOf(c).CSRF
	}
	t, e := consoleTemplates.Clone()
	if e != nil {
		return e
	}
	var b bytes.Buffer
	if e := t.ExecuteTemplate(&b, "head", p); e != nil {
		return e
	}
	b.WriteString(`<p><a href="/console/hazards">返回</a></p>`)
	if e := t.ExecuteTemplate(&b, "foot", p); e != nil {
		return e
	}
	s.consoleHeaders(c)
	c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
	return c.Status(status).Send(b.Bytes())
}

// statusOf maps an error to the status of a console page.
func statusOf(err error) int {
	switch syncproto.ErrorCode(err) {
	case syncproto.EINVALID:
		return http.StatusBadRequest
	case syncproto.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case syncproto.EFORBIDDEN:
		return http.StatusForbidden
	case syncproto.ENOTFOUND:
		return http.StatusNotFound
	case syncproto.ECONFLICT:
		return http.StatusConflict
	case syncproto.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// handleConsoleStatic handles "GET /console/static/*".
func (s *Server) handleConsoleStatic(c *fiber.Ctx) error {
	name := path.Clean("/" + c.Params("*"))
	b, err := fs.ReadFile(consoleFS, "consoleui/static"+name)
	if err != nil {
		return c.Status(http.StatusNotFound).SendString("Not found.")
	}
	c.Set(fiber.HeaderContentType, mime.TypeByExtension(path.Ext(name)))
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	c.Set("X-Content-Type-Options", "nosniff")
	return c.Send(b)
}

func (s *Server) handleLoginPage(c *fiber.Ctx) error {
	tok := uuid.NewString()
	s.setCookie(c, loginCookie, tok, time.Now().Add(time.Hour))
	return s.render(c, http.StatusOK, "login", page{Title: "登录", CSRF: tok, Next: safeNext(strings.Clone(c.Query("next")))}, nil)
}

// handleLogin handles "POST /console/login".
func (s *Server) handleLogin(c *fiber.Ctx) error {
	f := form(c)
	want := c.Cookies(loginCookie)
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(f.Get("csrf"))) != 1 {
		return s.consoleError(c, http.StatusForbidden, syncproto.Errorf(syncproto.EFORBIDDEN, "登录页面已过期，请刷新后重试。The sign-in form is stale: reload it."))
	}
	tok, sess, err := s.deps.Accounts.SignIn(c.UserContext(), f.Get("login"), f.Get("password"), strings.Clone(c.IP()))
	if err != nil {
		status := statusOf(err)
		if errors.Is(err, server.ErrThrottled) {
			status = http.StatusTooManyRequests
			c.Set(fiber.HeaderRetryAfter, "900")
		}
		if status >= 500 && status != http.StatusServiceUnavailable {
			return err
		}
		newTok := uuid.NewString()
		s.setCookie(c, loginCookie, newTok, time.Now().Add(time.Hour))
		return s.render(c, status, "login", page{Title: "登录", CSRF: newTok, Error: syncproto.ErrorMessage(err), Login: f.Get("login"), Next: safeNext(f.Get("next"))}, nil)
	}
	s.clearCookie(c, loginCookie)
	s.setCookie(c, sessionCookie, tok, sess.ExpiresAt)
	return c.Redirect(safeNext(f.Get("next")), http.StatusSeeOther)
}

// safeNext returns a console path to go to after signing in: only a path
// of the console itself, never another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "/console/login") {
		return "/console/hazards"
	}
	return next
}

func (s *Server) handleLogout(c *fiber.Ctx) error {
	if err := s.deps.Accounts.SignOut(c.UserContext(), sessionOf(c)); err != nil {
		return err
	}
	s.clearCookie(c, sessionCookie)
	return c.Redirect("/console/login", http.StatusSeeOther)
}

func (s *Server) handleLogoutEverywhere(c *fiber.Ctx) error {
	if err := s.deps.Accounts.SignOutEverywhere(c.UserContext(), sessionOf(c).AccountID); err != nil {
		return err
	}
	s.clearCookie(c, sessionCookie)
	return c.Redirect("/console/login", http.StatusSeeOther)
}

func (s *Server) basePage(c *fiber.Ctx, title string) page {
	me := principalOf(c)
	return page{Title: title, Me: &me, CSRF: sessionOf(c).CSRF}
}

func (s *Server) handlePasswordPage(c *fiber.Ctx) error {
	return s.render(c, http.StatusOK, "password", s.basePage(c, "修改密码"), nil)
}

func (s *Server) handlePassword(c *fiber.Ctx) error {
	f := form(c)
	err := s.deps.Accounts.ChangePassword(c.UserContext(), sessionOf(c), f.Get("old"), f.Get("new"))
	p := s.basePage(c, "修改密码")
	if err != nil {
		var e *syncproto.Error
		if !errors.As(err, &e) {
			return err
		}
		p.Error, p.Fields = e.Message, e.Fields
		return s.render(c, statusOf(err), "password", p, nil)
	}
	p.Flash = "密码已修改，其他设备上的登录已失效。"
	return s.render(c, http.StatusOK, "password", p, nil)
}

// Console words.
var (
	roleNames = map[string]string{
		server.RoleInspector: "督学", server.RoleZoneLeader: "责任区组长", server.RoleOfficeReviewer: "督导室审核员",
		server.RoleOfficeHead: "督导室主任", server.RoleAdmin: "管理员", server.RoleSchoolLiaison: "学校联络员", syncproto.RolePrincipal: "校长",
	}
	sevNames = map[string]string{"high": "高", "medium": "中", "low": "低"}
	sevIcons = map[string]string{"high": "▲▲▲", "medium": "▲▲", "low": "▲"}
	evNames  = map[string]string{
		syncproto.EventReported: "上报", syncproto.EventPhotoAdded: "补充照片", syncproto.EventNoteAdded: "备注",
		syncproto.EventReclassified: "调整风险等级", syncproto.EventConfirmed: "确认隐患", syncproto.EventRejected: "不予受理",
		syncproto.EventMarkedDuplicate: "标记重复", syncproto.EventNoticeIssued: "下发整改通知", syncproto.EventDeadlineChanged: "调整期限",
		syncproto.EventAcknowledged: "学校签收", syncproto.EventFixedOnSite: "现场整改", syncproto.EventRectificationReported: "报告整改",
		syncproto.EventVerificationPassed: "验收通过", syncproto.EventVerificationFailed: "验收不通过", syncproto.EventEscalated: "上报上级",
		syncproto.EventClosed: "消号", syncproto.EventReopened: "重新打开", syncproto.EventCancelled: "撤销",
	}
	actionOrder = []string{server.ActConfirm, server.ActReject, server.ActNotice, server.ActRectification, server.ActVerify,
		server.ActVerifyFailed, server.ActClose, server.ActReopen, server.ActNote}
	statusOrder = []string{syncproto.HazardReported, syncproto.HazardConfirmed, syncproto.HazardNoticeIssued, syncproto.HazardRectifying,
		syncproto.HazardPendingVerification, syncproto.HazardVerified, syncproto.HazardEscalated, syncproto.HazardClosed,
		syncproto.HazardRejected, syncproto.HazardDuplicate, syncproto.HazardCancelled}
)

func short(s string) string {
	if len(s) > 8 {
		return s[len(s)-8:]
	}
	return s
}

// consoleFuncs returns the template functions; names maps ids (schools,
// people, zones) to names.
func consoleFuncs(names map[string]string) template.FuncMap {
	name := func(prefix string) func(string) string {
		return func(id string) string {
			if n, ok := names[id]; ok && n != "" {
				return n
			}
			if id == "" {
				return ""
			}
			return prefix + short(id)
		}
	}
	cst := syncproto.ChinaTime
	return template.FuncMap{
		"roleName":   func(r string) string { return or(roleNames[r], r) },
		"sevName":    func(s string) string { return or(sevNames[s], "未定") },
		"sevIcon":    func(s string) string { return sevIcons[s] },
		"statusName": func(s string) string { return or(server.StatusNames[s], or(s, "—")) },
		"eventName":  func(s string) string { return or(evNames[s], s) },
		"schoolName": name("学校 "),
		"personName": name("人员 "),
		"zoneName":   name("责任区 "),
		"short":      short,
		"kindName":   func(k string) string { return or(kindNames[k], k) },
		"reviewName": func(k string) string { return or(server.ReviewNames()[k], or(reviewTypeNames[k], k)) },
		"date":       func(t time.Time) string { return t.In(cst).Format(time.DateOnly) },
		"datetime": func(v any) string {
			switch t := v.(type) {
			case time.Time:
				return t.In(cst).Format("2006-01-02 15:04")
			case *time.Time:
				if t != nil {
					return t.In(cst).Format("2006-01-02 15:04")
				}
			}
			return ""
		},
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// queueQuery is the queue's filter as it appears in the URL.
type queueQuery struct {
	Zone, School, Severity, Status, Sort string
	Overdue                              bool
}

// With returns the queue's URL with one parameter changed.
func (q queueQuery) With(key, value string) string {
	v := url.Values{}
	set := func(k, x string) {
		if x != "" {
			v.Set(k, x)
		}
	}
	set("zone", q.Zone)
	set("school", q.School)
	set("severity", q.Severity)
	set("sort", q.Sort)
	if key == "status" {
		set("status", value)
	} else {
		set("status", q.Status)
	}
	if key == "overdue" {
		set("overdue", value)
	}
	if len(v) == 0 {
		return "/console/hazards"
	}
	return "/console/hazards?" + v.Encode()
}

type statusCount struct {
	Key, Name string
	Count     int
}

// handleHazards handles "GET /console/hazards": the queue.
func (s *Server) handleHazards(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p := principalOf(c)
	f, err := s.deps.Desk.Filter(ctx, p)
	if err != nil {
		return err
	}
	query := func(k string) string { return strings.Clone(c.Query(k)) } // Fiber's strings live in its buffers
	q := queueQuery{Zone: query("zone"), School: query("school"), Severity: query("severity"), Status: query("status"),
		Sort: query("sort"), Overdue: c.Query("overdue") == "1"}
	fields := map[string]string{}
	for k, v := range map[string]string{"zone": q.Zone, "school": q.School} {
		if v != "" && uuid.Validate(v) != nil {
			fields[k] = "不是有效的编号 (not an id)"
		}
	}
	if q.Severity != "" && sevNames[q.Severity] == "" {
		fields["severity"] = "须为 low、medium 或 high"
	}
	if q.Status != "" && server.StatusNames[q.Status] == "" {
		fields["status"] = "未知状态 (unknown status)"
	}
	if q.Sort != "" && q.Sort != "newest" && q.Sort != "urgent" {
		fields["sort"] = "须为 newest 或 urgent"
	}
	if len(fields) > 0 {
		return s.consoleError(c, http.StatusBadRequest, syncproto.FieldError("筛选条件不正确。", fields))
	}
	f.Zone, f.School, f.Severity, f.Status, f.Overdue, f.Sort, f.Limit = q.Zone, q.School, q.Severity, q.Status, q.Overdue, q.Sort, 200
	rows, err := s.deps.Desk.Read.Hazards(ctx, f)
	if err != nil {
		return err
	}
	counts, err := s.deps.Desk.Read.HazardCounts(ctx, f)
	if err != nil {
		return err
	}
	schools, err := s.deps.Desk.Read.Schools(ctx)
	if err != nil {
		return err
	}
	names := map[string]string{}
	var visible []server.SchoolRow
	var zones []string
	for _, sc := range schools {
		names[sc.ID] = sc.Name
		if f.AllSchools || slices.Contains(f.Schools, sc.ID) {
			visible = append(visible, sc)
			if sc.ZoneID != "" && !slices.Contains(zones, sc.ZoneID) {
				zones = append(zones, sc.ZoneID)
			}
		}
	}
	var sts []statusCount
	total := 0
	for _, st := range statusOrder {
		total += counts[st]
		sts = append(sts, statusCount{Key: st, Name: server.StatusNames[st], Count: counts[st]})
	}
	data := struct {
		page
		Q          queueQuery
		Rows       []server.HazardRow
		Statuses   []statusCount
		Total      int
		Overdue    int
		Schools    []server.SchoolRow
		Zones      []string
		Severities []string
		Today      string
	}{s.basePage(c, "隐患台账"), q, rows, sts, total, counts["overdue"], visible, zones, []string{"high", "medium", "low"}, f.Today}
	return s.render(c, http.StatusOK, "hazards", data, consoleFuncs(names))
}

type photoView struct {
	SHA, Phase, TakenAt, Place string
	Received                   bool
}

type photoGroup struct {
	Name   string
	Photos []photoView
}

type actForm struct {
	Action, Reason, Deadline, Responsible, Phone, Items string
}

// hazardPage renders the detail page, with an error and the typed form
// when a decision was refused.
func (s *Server) hazardPage(c *fiber.Ctx, status int, id string, pg page, af actForm) error {
	ctx := c.UserContext()
	p := principalOf(c)
	v, err := s.deps.Desk.Hazard(ctx, p, id)
	if err != nil {
		return s.consoleError(c, statusOf(err), err)
	}
	names := map[string]string{}
	if schools, err := s.deps.Desk.Read.Schools(ctx); err == nil {
		for _, sc := range schools {
			names[sc.ID] = sc.Name
		}
	}
	for _, ev := range v.Events {
		if _, ok := names[ev.ActorID]; !ok && ev.ActorID != "" {
			if acc, err := s.deps.Accounts.Store.Account(ctx, ev.ActorID); err == nil {
				names[ev.ActorID] = acc.Name
			}
		}
	}
	// Photos: the fold's list (every event's photos, with their phase),
	// resolved to hashes through attachment records, with what the photo
	// service holds.
	received := map[string]media.PhotoStatus{}
	note := func(rp media.RecordPhotos) {
		for _, ph := range rp.Photos {
			received[ph.SHA256] = ph
		}
	}
	if s.deps.Media != nil {
		if rp, err := s.deps.Media.RecordPhotos(ctx, p, id, v.Row.SchoolID); err == nil {
			note(rp)
		}
	}
	groups := []photoGroup{{Name: "整改前 Before"}, {Name: "整改后 After"}, {Name: "其他证据 Evidence"}}
	seen := map[string]bool{}
	addPhoto := func(sha, phase, taken string) {
		if sha == "" || seen[sha] {
			return
		}
		seen[sha] = true
		pv := photoView{SHA: sha, Phase: phase, TakenAt: taken}
		if st, ok := received[sha]; ok && st.Received {
			pv.Received = true
			if st.TakenAt != nil {
				pv.TakenAt = st.TakenAt.In(syncproto.ChinaTime).Format("2006-01-02 15:04")
			}
			if st.Lat != nil && st.Lon != nil {
				pv.Place = formatPlace(*st.Lat, *st.Lon)
			}
		}
		i := 2
		switch phase {
		case "before":
			i = 0
		case "after":
			i = 1
		}
		groups[i].Photos = append(groups[i].Photos, pv)
	}
	var photoIDs []string
	_ = jsonUnmarshal(v.Record.Value("photo_ids"), &photoIDs)
	type ref struct{ id, sha, phase string }
	var refs []ref
	for _, aid := range photoIDs {
		refs = append(refs, ref{id: aid, phase: "before"})
	}
	for _, ph := range v.State.Photos {
		refs = append(refs, ref{id: ph.ID, sha: ph.SHA256, phase: ph.Phase})
	}
	for _, r := range refs {
		sha, taken := r.sha, ""
		if sha == "" && r.id != "" {
			aid, err := uuid.Parse(r.id)
			if err != nil {
				continue
			}
			att, err := s.deps.Sync.Record(ctx, v.Row.SchoolID, aid)
			if err != nil {
				continue
			}
			_ = jsonUnmarshal(att.Value("sha256"), &sha)
			var t time.Time
			if jsonUnmarshal(att.Value("taken_at"), &t) == nil && !t.IsZero() {
				taken = t.In(syncproto.ChinaTime).Format("2006-01-02 15:04")
			}
			if _, ok := received[sha]; !ok && s.deps.Media != nil {
				if rp, err := s.deps.Media.RecordPhotos(ctx, p, r.id, v.Row.SchoolID); err == nil {
					note(rp)
				}
			}
		}
		addPhoto(sha, r.phase, taken)
	}
	var resp struct {
		Name  string `json:"name"`
		Phone string `json:"phone"`
		Role  string `json:"role"`
	}
	responsible := ""
	if jsonUnmarshal(v.State.Responsible, &resp) == nil && resp.Name != "" {
		responsible = strings.TrimSpace(resp.Name + " " + resp.Role + " " + resp.Phone)
	}
	var desc, loc string
	_ = jsonUnmarshal(v.Record.Value("description"), &desc)
	_ = jsonUnmarshal(v.Record.Value("location_desc"), &loc)
	audit, err := s.deps.Desk.Audit.Store.AuditOf(ctx, id)
	if err != nil {
		return err
	}
	for _, e := range audit {
		// The audit log names whoever wrote: phones' inspectors too.
		if _, ok := names[e.Actor]; !ok && e.ActorName != "" {
			names[e.Actor] = e.ActorName
		}
	}
	var acts []statusCount
	for _, a := range actionOrder {
		acts = append(acts, statusCount{Key: a, Name: server.ActionNames[a]})
	}
	if pg.Title == "" {
		pg = s.basePage(c, v.Row.Title)
	}
	data := struct {
		page
		H           server.HazardView
		Events      []server.EventView
		PhotoGroups []photoGroup
		Responsible string
		Description string
		Location    string
		Audit       []server.AuditEntry
		Actions     []statusCount
		CanAct      bool
		Form        actForm
		// Reported: the record is the report (no reported event of its
		// own), shown as the timeline's first entry.
		Reported bool
	}{pg, v, v.Events, groups, responsible, desc, loc, audit, acts,
		p.Has(server.RoleOfficeReviewer) || p.Has(server.RoleOfficeHead), af, !reportedEvent(v.Events)}
	return s.render(c, status, "hazard", data, consoleFuncs(names))
}

// handleHazard handles "GET /console/hazards/:id".
func (s *Server) handleHazard(c *fiber.Ctx) error {
	pg := page{}
	if done := c.Query("done"); done != "" && server.ActionNames[done] != "" {
		pg = s.basePage(c, "")
		pg.Flash = "已" + server.ActionNames[done] + "。手机下次同步时会看到。"
		pg.Title = "隐患"
	}
	return s.hazardPage(c, http.StatusOK, strings.Clone(c.Params("id")), pg, actForm{})
}

// handleHazardAct handles "POST /console/hazards/:id/act": a decision
// pushed through the sync path as the session's replica.
func (s *Server) handleHazardAct(c *fiber.Ctx) error {
	f := form(c)
	id := strings.Clone(c.Params("id")) // Fiber's strings live in its buffers
	af := actForm{Action: f.Get("action"), Reason: f.Get("reason"), Deadline: f.Get("deadline"), Responsible: f.Get("responsible"),
		Phone: f.Get("phone"), Items: f.Get("items")}
	_, err := s.deps.Desk.Act(c.UserContext(), principalOf(c), id, server.HazardAction{
		Action: af.Action, Reason: af.Reason, Severity: f.Get("severity"), Deadline: af.Deadline,
		Responsible: af.Responsible, Phone: af.Phone, Items: strings.Split(af.Items, "\n"),
	})
	if err != nil {
		var e *syncproto.Error
		if !errors.As(err, &e) {
			return err
		}
		if e.Code == syncproto.ENOTFOUND || (e.Code == syncproto.EFORBIDDEN && af.Action != "") {
			// Out of scope or no such hazard: no page of it to show.
			if _, herr := s.deps.Desk.Hazard(c.UserContext(), principalOf(c), id); herr != nil {
				return s.consoleError(c, statusOf(err), err)
			}
		}
		pg := s.basePage(c, "隐患")
		pg.Error, pg.Fields = e.Message, e.Fields
		return s.hazardPage(c, statusOf(err), id, pg, af)
	}
	return c.Redirect("/console/hazards/"+url.PathEscape(id)+"?done="+url.QueryEscape(af.Action), http.StatusSeeOther)
}

// handleConsolePhoto handles "GET /console/photos/:sha/:variant": a
// redirect to a presigned link of the photo (a thumbnail not made yet
// falls back to the original).
func (s *Server) handleConsolePhoto(c *fiber.Ctx) error {
	if s.deps.Media == nil {
		return c.SendStatus(http.StatusNotFound)
	}
	ctx, p := c.UserContext(), principalOf(c)
	sha, variant := strings.Clone(c.Params("sha")), strings.Clone(c.Params("variant"))
	u, err := s.deps.Media.URL(ctx, p, sha, variant)
	if syncproto.ErrorCode(err) == syncproto.ENOTFOUND && variant != media.VariantOriginal {
		u, err = s.deps.Media.URL(ctx, p, sha, media.VariantOriginal)
	}
	if err != nil {
		return c.Status(statusOf(err)).SendString(syncproto.ErrorMessage(err))
	}
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	return c.Redirect(u.URL, http.StatusFound)
}

// jsonUnmarshal decodes a JSON value, failing on an absent one.
func jsonUnmarshal(b []byte, v any) error {
	if len(b) == 0 {
		return errors.New("no value")
	}
	return json.Unmarshal(b, v)
}

// formatPlace writes a position as 30.7801°N 115.3975°E.
func formatPlace(lat, lon float64) string {
	ns, ew := "N", "E"
	if lat < 0 {
		ns, lat = "S", -lat
	}
	if lon < 0 {
		ew, lon = "W", -lon
	}
	return fmt.Sprintf("%.4f°%s %.4f°%s", lat, ns, lon, ew)
}

func reportedEvent(evs []server.EventView) bool {
	for _, e := range evs {
		if e.Type == syncproto.EventReported {
			return true
		}
	}
	return false
}

// conflictVersion is one version of a conflicting field, as the inbox
// shows it.
type conflictVersion struct {
	ConflictID, Raw, Text, Author, When, Replica, Photo string
}

type conflictItem struct {
	server.Conflict
	Title    string
	Versions []conflictVersion
}

var kindNames = map[string]string{
	"hazard": "隐患", "visit": "督导记录", "lesson_observation": "听课记录", "questionnaire_response": "问卷",
	"monthly_feedback": "月反馈", "school": "学校", "attachment": "照片", "follow_up_task": "跟进任务",
}

// handleConflicts handles "GET /console/conflicts": the open conflicts in
// the account's scope, both values side by side with who and when.
func (s *Server) handleConflicts(c *fiber.Ctx) error {
	ctx, p := c.UserContext(), principalOf(c)
	list, err := s.deps.Desk.OpenConflicts(ctx, p, 200)
	if err != nil {
		return err
	}
	names := map[string]string{}
	if schools, err := s.deps.Desk.Read.Schools(ctx); err == nil {
		for _, sc := range schools {
			names[sc.ID] = sc.Name
		}
	}
	var items []conflictItem
	for _, cf := range list {
		it := conflictItem{Conflict: cf, Title: kindNames[cf.Kind]}
		if entries, err := s.deps.Desk.Audit.Store.AuditOf(ctx, cf.RecordID.String()); err == nil {
			for _, e := range entries {
				if _, ok := names[e.Actor]; !ok && e.ActorName != "" {
					names[e.Actor] = e.ActorName
				}
			}
		}
		if rec, err := s.deps.Sync.Record(ctx, cf.Scope, cf.RecordID); err == nil {
			var title string
			if jsonUnmarshal(rec.Value("title"), &title) == nil && title != "" {
				it.Title = title
			}
		}
		for _, v := range cf.Versions {
			cv := conflictVersion{ConflictID: cf.ID, Raw: string(v.Value), Author: v.Author, Replica: v.HLC.Replica.String(),
				When: time.UnixMilli(v.HLC.Wall).In(syncproto.ChinaTime).Format("2006-01-02 15:04")}
			var str string
			var ref struct {
				SHA256 string `json:"sha256"`
			}
			switch {
			case json.Unmarshal(v.Value, &str) == nil:
				cv.Text = str
			case json.Unmarshal(v.Value, &ref) == nil && ref.SHA256 != "":
				cv.Photo, cv.Text = ref.SHA256, "照片 "+short(ref.SHA256)
			default:
				cv.Text = string(v.Value)
			}
			if _, ok := names[v.Author]; !ok {
				if acc, err := s.deps.Accounts.Store.Account(ctx, v.Author); err == nil {
					names[v.Author] = acc.Name
				}
			}
			it.Versions = append(it.Versions, cv)
		}
		items = append(items, it)
	}
	pg := s.basePage(c, "冲突处理")
	if done := c.Query("done"); done != "" {
		pg.Flash = "冲突已处理，手机下次同步时会收到结果。"
	}
	data := struct {
		page
		Items []conflictItem
	}{pg, items}
	return s.render(c, http.StatusOK, "conflicts", data, consoleFuncs(names))
}

// handleConsoleResolve handles "POST /console/conflicts/resolve".
func (s *Server) handleConsoleResolve(c *fiber.Ctx) error {
	f := form(c)
	value := f.Get("value")
	if text := strings.TrimSpace(f.Get("text")); value == "" && text != "" {
		// A new value: JSON as typed, or else the text as a string.
		if json.Valid([]byte(text)) {
			value = text
		} else {
			b, _ := json.Marshal(text)
			value = string(b)
		}
	}
	if value == "" {
		return s.consoleError(c, http.StatusBadRequest, syncproto.FieldError("请选择一个值或写入新值。Choose a value or write one.", map[string]string{"value": "required"}))
	}
	_, err := s.deps.Desk.ResolveConflict(c.UserContext(), principalOf(c), f.Get("id"), json.RawMessage(value), f.Get("reason"))
	if err != nil {
		var e *syncproto.Error
		if !errors.As(err, &e) {
			return err
		}
		return s.consoleError(c, statusOf(err), err)
	}
	return c.Redirect("/console/conflicts?done=1", http.StatusSeeOther)
}

var reviewTypeNames = map[string]string{"comment": "留言"}

// handleRecords handles "GET /console/records": the reviewed records of
// the account's scope, by review state.
func (s *Server) handleRecords(c *fiber.Ctx) error {
	ctx, p := c.UserContext(), principalOf(c)
	f, err := s.deps.Desk.Filter(ctx, p)
	if err != nil {
		return err
	}
	state, kind := or(strings.Clone(c.Query("state")), server.ReviewSubmitted), strings.Clone(c.Query("kind"))
	if server.ReviewNames()[state] == "" || (kind != "" && !slices.Contains(server.ReviewedKinds, kind)) {
		return s.consoleError(c, http.StatusBadRequest, syncproto.FieldError("筛选条件不正确。", map[string]string{"state": "submitted, returned or accepted", "kind": "a reviewed kind"}))
	}
	rows, err := s.deps.Desk.Read.Records(ctx, server.RecordFilter{AllSchools: f.AllSchools, Schools: f.Schools, Kind: kind, ReviewState: state, Limit: 200})
	if err != nil {
		return err
	}
	names := map[string]string{}
	if schools, err := s.deps.Desk.Read.Schools(ctx); err == nil {
		for _, sc := range schools {
			names[sc.ID] = sc.Name
		}
	}
	var states, kinds []statusCount
	for _, st := range []string{server.ReviewSubmitted, server.ReviewReturned, server.ReviewAccepted} {
		states = append(states, statusCount{Key: st, Name: server.ReviewNames()[st]})
	}
	for _, k := range server.ReviewedKinds {
		kinds = append(kinds, statusCount{Key: k, Name: kindNames[k]})
	}
	data := struct {
		page
		Rows          []server.RecordRow
		States, Kinds []statusCount
		State, Kind   string
	}{s.basePage(c, "记录审核"), rows, states, kinds, state, kind}
	return s.render(c, http.StatusOK, "records", data, consoleFuncs(names))
}

// recordPage renders one reviewed record.
func (s *Server) recordPage(c *fiber.Ctx, status int, school, id string, pg page, comment string) error {
	ctx, p := c.UserContext(), principalOf(c)
	rid, err := uuid.Parse(id)
	if err != nil || !server.ValidScope(school) || school == server.RefScope {
		return s.consoleError(c, http.StatusNotFound, syncproto.Errorf(syncproto.ENOTFOUND, "没有该记录。No such record."))
	}
	if err := s.deps.Desk.Access.CanSee(ctx, p, school); err != nil {
		return s.consoleError(c, http.StatusForbidden, err)
	}
	rec, err := s.deps.Sync.Record(ctx, school, rid)
	if err != nil || !slices.Contains(server.ReviewedKinds, rec.Kind) {
		return s.consoleError(c, http.StatusNotFound, syncproto.Errorf(syncproto.ENOTFOUND, "没有该记录。No such record."))
	}
	names := map[string]string{}
	if schools, err := s.deps.Desk.Read.Schools(ctx); err == nil {
		for _, sc := range schools {
			names[sc.ID] = sc.Name
		}
	}
	var fields []statusCount
	keys := make([]string, 0, len(rec.Fields))
	for k := range rec.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := rec.Value(k)
		var str string
		text := string(v)
		if json.Unmarshal(v, &str) == nil {
			text = str
		}
		fields = append(fields, statusCount{Key: k, Name: text})
	}
	var title string
	_ = jsonUnmarshal(rec.Value("title"), &title)
	if pg.Title == "" {
		pg = s.basePage(c, kindNames[rec.Kind])
	}
	var day []server.DayItem
	if rec.Kind == "visit" {
		if day, err = s.deps.Desk.VisitDay(ctx, p, rec); err != nil {
			return err
		}
	}
	data := struct {
		page
		Day     []server.DayItem
		Rec     *syncproto.Record
		Title   string
		Review  server.ReviewState
		Fields  []statusCount
		Fields2 map[string]string
		CanAct  bool
		Comment string
	}{pg, day, rec, title, server.FoldReview(rec), fields, pg.Fields, p.Has(server.RoleOfficeReviewer) || p.Has(server.RoleOfficeHead), comment}
	return s.render(c, status, "record", data, consoleFuncs(names))
}

// handleRecord handles "GET /console/records/:school/:id".
func (s *Server) handleRecord(c *fiber.Ctx) error {
	pg := page{}
	if c.Query("done") != "" {
		pg = s.basePage(c, "记录")
		pg.Flash = "已保存审核意见。督学下次同步时会收到。"
	}
	return s.recordPage(c, http.StatusOK, strings.Clone(c.Params("school")), strings.Clone(c.Params("id")), pg, "")
}

// handleReview handles "POST /console/records/:school/:id/review".
func (s *Server) handleReview(c *fiber.Ctx) error {
	f := form(c)
	school, id := strings.Clone(c.Params("school")), strings.Clone(c.Params("id"))
	rid, err := uuid.Parse(id)
	if err != nil || !server.ValidScope(school) {
		return s.consoleError(c, http.StatusNotFound, syncproto.Errorf(syncproto.ENOTFOUND, "没有该记录。No such record."))
	}
	_, err = s.deps.Desk.Review(c.UserContext(), principalOf(c), school, rid, f.Get("action"), f.Get("comment"))
	if err != nil {
		var e *syncproto.Error
		if !errors.As(err, &e) {
			return err
		}
		if e.Code == syncproto.EFORBIDDEN || e.Code == syncproto.ENOTFOUND {
			return s.consoleError(c, statusOf(err), err)
		}
		pg := s.basePage(c, "记录")
		pg.Error, pg.Fields = e.Message, e.Fields
		return s.recordPage(c, statusOf(err), school, id, pg, f.Get("comment"))
	}
	return c.Redirect("/console/records/"+url.PathEscape(school)+"/"+url.PathEscape(id)+"?done=1", http.StatusSeeOther)
}

// handlePersonAudit handles "GET /console/audit?actor=ID": a person's
// decisions and accepted changes, newest first, in the account's scope.
func (s *Server) handlePersonAudit(c *fiber.Ctx) error {
	ctx, p := c.UserContext(), principalOf(c)
	actor := strings.Clone(c.Query("actor"))
	if actor == "" || len(actor) > 100 {
		return s.consoleError(c, http.StatusBadRequest, syncproto.FieldError("请指定人员。Say whose trail.", map[string]string{"actor": "required"}))
	}
	entries, err := s.deps.Desk.AuditOfPerson(ctx, p, actor, 500)
	if err != nil {
		return s.consoleError(c, statusOf(err), err)
	}
	names := map[string]string{}
	for _, e := range entries {
		if e.ActorName != "" {
			names[e.Actor] = e.ActorName
		}
	}
	if _, ok := names[actor]; !ok {
		if acc, err := s.deps.Accounts.Store.Account(ctx, actor); err == nil {
			names[actor] = acc.Name
		}
	}
	data := struct {
		page
		Actor   string
		Entries []server.AuditEntry
	}{s.basePage(c, "审计记录"), actor, entries}
	return s.render(c, http.StatusOK, "audit", data, consoleFuncs(names))
}
