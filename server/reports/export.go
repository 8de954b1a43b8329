package reports

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Ledger names (the :ledger of /v1/reports/export/:ledger).
const (
	LedgerHazards       = "hazards"
	LedgerFeedback      = "feedback"
	LedgerVisits        = "visits"
	LedgerObservations  = "observations"
	LedgerQuestionnaire = "questionnaires"
)

// Ledgers lists every ledger an office can export.
var Ledgers = []string{LedgerHazards, LedgerFeedback, LedgerVisits, LedgerObservations, LedgerQuestionnaire}

// Column is a column of a ledger: its Chinese header and its width in
// characters (Excel's unit; a Chinese character is about two).
type Column struct {
	Title string
	Width float64
}

// Sheet titles.
var sheetTitles = map[string]string{
	LedgerHazards:       "隐患台账",
	LedgerFeedback:      "每月反馈表",
	LedgerVisits:        "进校督导记录",
	LedgerObservations:  "听课记录",
	LedgerQuestionnaire: "问卷答卷",
}

// Columns returns a ledger's columns.
func Columns(ledger string) []Column {
	switch ledger {
	case LedgerHazards:
		return []Column{{"序号", 6}, {"学校", 28}, {"隐患", 30}, {"类别", 10}, {"位置", 24}, {"发现日期", 12}, {"严重程度", 10},
			{"状态", 12}, {"整改期限", 12}, {"期限来源", 10}, {"逾期天数", 10}, {"责任人", 28}, {"消号日期", 12}, {"照片数", 8}, {"照片链接", 48}, {"隐患编号", 38}}
	case LedgerFeedback:
		return []Column{{"月份", 9}, {"督学", 10}, {"学校", 28}, {"状态", 9}, {"进校次数", 9}, {"在校天数", 9}, {"新发现隐患", 11},
			{"已消号隐患", 11}, {"逾期隐患", 9}, {"听课节数", 9}, {"问卷份数", 9}, {"成绩与亮点", 40}, {"问题", 40}, {"建议", 40}, {"反馈表编号", 38}}
	case LedgerVisits:
		return []Column{{"日期", 12}, {"学校", 28}, {"督学", 10}, {"同行督学", 16}, {"类型", 10}, {"状态", 9}, {"主题", 30},
			{"进校时间", 20}, {"离校时间", 20}, {"成绩与亮点", 40}, {"问题", 40}, {"建议", 40}, {"记录编号", 38}}
	case LedgerObservations:
		return []Column{{"日期", 12}, {"学校", 28}, {"听课人", 10}, {"授课教师", 10}, {"年级", 8}, {"班级", 10}, {"学科", 8},
			{"课题", 30}, {"方式", 10}, {"时长(分钟)", 10}, {"学时", 7}, {"总分", 7}, {"等级", 8}, {"各项得分", 40}, {"建议", 40}, {"记录编号", 38}}
	case LedgerQuestionnaire:
		return []Column{{"日期", 12}, {"学校", 28}, {"问卷", 30}, {"对象", 9}, {"题号", 7}, {"答案", 40}, {"答卷编号", 38}}
	}
	return nil
}

// Chinese labels of codes.
var (
	statusZh = map[string]string{"reported": "已上报", "confirmed": "已确认", "rejected": "已驳回", "duplicate": "重复",
		"cancelled": "已撤销", "notice_issued": "已下发整改通知", "rectifying": "整改中", "pending_verification": "待复查",
		"verified": "复查通过", "escalated": "已上报上级", "closed": "已消号",
		"draft": "草稿", "submitted": "已提交", "returned": "已退回", "accepted": "已接收", "archived": "已归档",
		"planned": "计划", "in_progress": "进行中", "completed": "已完成"}
	severityZh = map[string]string{"low": "一般", "medium": "较大", "high": "重大"}
	kindZh     = map[string]string{"routine": "经常性督导", "one_day": "一日督导", "follow_up": "随访", "special": "专项督导",
		"joint": "联合视导", "comprehensive": "综合督导", "unannounced": "暗访", "complaint_check": "举报核实", "incident": "安全事件"}
	modeZh = map[string]string{"random": "随堂听课", "push_door": "推门听课", "scheduled": "预约听课", "demonstration": "示范课",
		"open_class": "公开课", "administrative": "行政听课"}
	respondentZh = map[string]string{"student": "学生", "parent": "家长", "teacher": "教师", "staff": "职工", "principal": "校长", "public": "公众"}
	deadlineZh   = map[string]string{"notice": "整改通知", "quota": "默认期限"}
)

func zh(m map[string]string, code string) string {
	if s, ok := m[code]; ok {
		return s
	}
	return code
}

// Spec says what to export.
type Spec struct {
	Ledger string
	Period Period
	Filter Filter
	// Format is "xlsx" or "csv".
	Format string
	// Schools, when not nil, are the only schools read (a phone's
	// assigned schools).
	Schools []string
	// Photos adds a sheet with the photos of every hazard (thumbnails
	// embedded): the hazard ledger of one school, as XLSX.
	Photos bool
}

// Exporter writes ledgers from the store, one school's records at a
// time: its memory is bounded by the largest school, not the county, and
// the XLSX is written through excelize's StreamWriter.
type Exporter struct {
	Store Store
	Dir   Directory // may be nil
	// BaseURL prefixes the photo links of the hazard ledger
	// ("https://fieldsync.example.cn"); empty gives paths.
	BaseURL string
	// Photos gives the photos of the photo appendix (Spec.Photos).
	Photos PhotoSource
}

// RowWriter receives a ledger's header and rows.
type RowWriter interface {
	Header(sheet string, cols []Column) error
	Row(values []any) error
	Close() error
}

// Export writes one ledger to w at server time now.
func (e *Exporter) Export(ctx context.Context, w io.Writer, spec Spec, now time.Time) error {
	var rw RowWriter
	switch spec.Format {
	case "xlsx", "":
		rw = NewXLSXWriter(w)
	case "csv":
		rw = NewCSVWriter(w)
	default:
		return syncproto.FieldError("Unknown export format.", map[string]string{"format": "is xlsx or csv"})
	}
	if err := e.Rows(ctx, rw, spec, now); err != nil {
		return err
	}
	return rw.Close()
}

// Rows writes a ledger's header and rows to rw.
func (e *Exporter) Rows(ctx context.Context, rw RowWriter, spec Spec, now time.Time) error {
	cols := Columns(spec.Ledger)
	if cols == nil {
		return syncproto.FieldError("Unknown ledger.", map[string]string{"ledger": "is one of " + strings.Join(Ledgers, ", ")})
	}
	if spec.Photos {
		switch {
		case spec.Ledger != LedgerHazards:
			return syncproto.FieldError("The photo appendix is for the hazard ledger.", map[string]string{"photos": "only with the hazards ledger"})
		case spec.Filter.School == "":
			return syncproto.FieldError("The photo appendix is made for one school.", map[string]string{"school": "is required with photos"})
		case e.Photos == nil:
			return syncproto.Errorf(syncproto.EUNAVAILABLE, "This server has no photo service for the appendix.")
		}
		if _, ok := rw.(appendixWriter); !ok {
			return syncproto.FieldError("The photo appendix is in XLSX only.", map[string]string{"format": "must be xlsx with photos"})
		}
	}
	if err := rw.Header(sheetTitles[spec.Ledger], cols); err != nil {
		return err
	}
	base, scopes, err := e.base(ctx, spec.Filter, now)
	if spec.Schools != nil {
		scopes = slices.DeleteFunc(scopes, func(s string) bool { return !slices.Contains(spec.Schools, s) })
	}
	if err != nil {
		return err
	}
	n := 0
	var items []AppendixItem
	for _, scope := range scopes {
		recs, err := ReadScope(ctx, e.Store, scope)
		if err != nil {
			return err
		}
		c := base.child()
		for _, r := range recs {
			c.Add(r)
		}
		c.Sort()
		if !c.passes(scope, spec.Filter) {
			continue
		}
		if err := writeLedger(rw, c, spec, e.BaseURL, scope, &n); err != nil {
			return err
		}
		if spec.Photos {
			for _, h := range c.Hazards {
				if inLedger(h, spec.Period) && c.inspectorMatch(spec.Filter, spec.Period, scope, c.inspectorByUser(h.FoundBy)) {
					photos, err := e.Photos(ctx, scope, h.ID)
					if err != nil {
						return fmt.Errorf("reports: photos of %s: %w", h.ID, err)
					}
					items = append(items, AppendixItem{HazardID: h.ID, Title: h.Title, Found: h.Found, Photos: photos})
				}
			}
		}
	}
	if spec.Photos {
		return rw.(appendixWriter).Appendix(items)
	}
	return nil
}

// inLedger reports whether a hazard belongs in the ledger of a period:
// found in it, or found before its end and open or closed in it.
func inLedger(h *Hazard, p Period) bool {
	return h.Found <= p.To && (p.Contains(h.Found) || openStatus(h.Status) || p.Contains(h.Closed))
}

// appendixWriter is a RowWriter that can add the photo appendix.
type appendixWriter interface {
	Appendix(items []AppendixItem) error
}

// base reads the reference scope and the directory's inspectors, and
// returns the scopes to read.
func (e *Exporter) base(ctx context.Context, f Filter, now time.Time) (*County, []string, error) {
	ref, err := ReadScope(ctx, e.Store, server.RefScope)
	if err != nil {
		return nil, nil, err
	}
	q := Defaults()
	for _, r := range ref {
		if r.Kind == SettingsKind && r.ID == SettingsRecordID("") {
			if q, err = QuotasFromRecord(r); err != nil {
				return nil, nil, err
			}
		}
	}
	c := NewCounty(q, now)
	for _, r := range ref {
		c.Add(r)
	}
	if e.Dir != nil {
		if err := c.addDirectory(ctx, e.Dir); err != nil {
			return nil, nil, err
		}
		if f.Inspector != "" {
			as, err := e.Dir.AssignmentsOfInspector(ctx, f.Inspector)
			if err != nil {
				return nil, nil, err
			}
			for _, a := range as {
				if b := (Assignment{ID: a.ID, InspectorID: a.InspectorID, SchoolID: a.SchoolID, Start: a.Start, End: a.End}); !slices.Contains(c.Assignments, b) {
					c.Assignments = append(c.Assignments, b)
				}
			}
		}
	}
	if f.School != "" {
		return c, []string{f.School}, nil
	}
	all, err := e.Store.Scopes(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reports: scopes: %w", err)
	}
	var scopes []string
	for s := range all {
		if s != server.RefScope {
			scopes = append(scopes, s)
		}
	}
	sort.Strings(scopes)
	return c, scopes, nil
}

// child returns a county sharing c's reference data (inspectors, the
// directory's assignments, quotas, time) with no school records.
func (c *County) child() *County {
	return &County{Schools: map[string]*School{}, Zones: c.Zones, Inspectors: c.Inspectors, Assignments: slices.Clone(c.Assignments), Quotas: c.Quotas, Now: c.Now}
}

func (c *County) inspectorName(id string) string {
	if in := c.Inspectors[id]; in != nil && in.Name != "" {
		return in.Name
	}
	return id
}

func (c *County) inspectorByUser(user string) string {
	for _, in := range c.Inspectors {
		if in.UserID == user && user != "" {
			return in.ID
		}
	}
	return ""
}

func (c *County) schoolName(id string) string {
	if s := c.Schools[id]; s != nil && s.Name != "" {
		return s.Name
	}
	return id
}

// inspectorMatch reports whether a record of school made by inspector
// passes the filter's inspector: made by them, or at a school listed with
// them during the period.
func (c *County) inspectorMatch(f Filter, p Period, school string, by ...string) bool {
	if f.Inspector == "" || slices.Contains(by, f.Inspector) {
		return true
	}
	return slices.Contains(c.listed(school, p.From, p.To), f.Inspector)
}

func writeLedger(rw RowWriter, c *County, spec Spec, baseURL, school string, n *int) error {
	p, f := spec.Period, spec.Filter
	switch spec.Ledger {
	case LedgerHazards:
		// The ledger lists hazards found in the period, and older ones
		// still open at its end.
		for _, h := range c.Hazards {
			if h.SchoolID != school || !inLedger(h, p) {
				continue
			}
			if !c.inspectorMatch(f, p, school, c.inspectorByUser(h.FoundBy)) {
				continue
			}
			*n++
			link := ""
			if len(h.Photos) > 0 {
				link = baseURL + "/v1/records/" + h.ID + "/photos"
			}
			overdue := any("")
			if h.Overdue {
				overdue = h.OverdueDays
			}
			if err := rw.Row([]any{*n, c.schoolName(school), h.Title, h.Category, h.Location, h.Found, zh(severityZh, h.Severity),
				zh(statusZh, h.Status), h.Deadline, zh(deadlineZh, h.DeadlineFrom), overdue, h.Responsible, h.Closed, len(h.Photos), link, h.ID}); err != nil {
				return err
			}
		}
	case LedgerFeedback:
		for _, fb := range c.Feedback {
			if fb.SchoolID != school || len(fb.Month) != 7 || fb.Month < p.From[:7] || fb.Month > p.To[:7] {
				continue
			}
			if f.Inspector != "" && fb.InspectorID != f.Inspector {
				continue
			}
			cnt := func(k string) any {
				if v, ok := fb.Counters[k]; ok {
					return v
				}
				return ""
			}
			if err := rw.Row([]any{fb.Month, c.inspectorName(fb.InspectorID), c.schoolName(school), zh(statusZh, fb.Status), len(fb.VisitIDs),
				fb.DaysOnSite, cnt("hazards_opened"), cnt("hazards_closed"), cnt("hazards_overdue"), cnt("observations"), cnt("questionnaires"),
				fb.Highlights, fb.Problems, fb.Suggestions, fb.ID}); err != nil {
				return err
			}
		}
	case LedgerVisits:
		for _, v := range c.Visits {
			if v.SchoolID != school || !p.Contains(v.Date) || !c.inspectorMatch(f, p, school, append([]string{v.InspectorID}, v.CoInspectors...)...) {
				continue
			}
			co := make([]string, len(v.CoInspectors))
			for i, id := range v.CoInspectors {
				co[i] = c.inspectorName(id)
			}
			if err := rw.Row([]any{v.Date, c.schoolName(school), c.inspectorName(v.InspectorID), strings.Join(co, "、"), zh(kindZh, v.Kind),
				zh(statusZh, v.Status), v.Theme, v.CheckIn, v.CheckOut, v.Highlights, v.Problems, v.Suggestions, v.ID}); err != nil {
				return err
			}
		}
	case LedgerObservations:
		for _, o := range c.Observations {
			if o.SchoolID != school || !p.Contains(o.Date) || !c.inspectorMatch(f, p, school, o.ObserverID) {
				continue
			}
			scores := make([]string, len(o.Scores))
			for i, s := range o.Scores {
				scores[i] = s.Code + "=" + strconv.FormatFloat(s.Score, 'f', -1, 64)
			}
			hours := round1(float64(o.DurationMin) / float64(c.Quotas.ClassHourMinutes))
			if err := rw.Row([]any{o.Date, c.schoolName(school), c.inspectorName(o.ObserverID), o.Teacher, o.Grade, o.ClassName, o.Subject,
				o.Topic, zh(modeZh, o.Mode), o.DurationMin, hours, o.Total, o.Band, strings.Join(scores, "；"), o.Suggestions, o.ID}); err != nil {
				return err
			}
		}
	case LedgerQuestionnaire:
		// One row per answer, so a pivot table counts answers by question.
		for _, r := range c.Responses {
			if r.SchoolID != school || !p.Contains(r.Date) || r.Status == "void" || !c.inspectorMatch(f, p, school, c.inspectorByUser(r.CollectorID)) {
				continue
			}
			for _, a := range r.Answers {
				if err := rw.Row([]any{r.Date, c.schoolName(school), r.Form, zh(respondentZh, r.RespondentType), a.QID, a.Value, r.ID}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// XLSXWriter writes one sheet through excelize's StreamWriter: rows go
// to a temporary buffer that spills to disk, so memory stays flat
// whatever the number of rows.
type XLSXWriter struct {
	w   io.Writer
	f   *excelize.File
	sw  *excelize.StreamWriter
	row int
}

// NewXLSXWriter returns a writer of an XLSX workbook to w.
func NewXLSXWriter(w io.Writer) *XLSXWriter { return &XLSXWriter{w: w, f: excelize.NewFile()} }

// Header starts the sheet: its name, column widths, a bold frozen
// header row.
func (x *XLSXWriter) Header(sheet string, cols []Column) error {
	if err := x.f.SetSheetName("Sheet1", sheet); err != nil {
		return err
	}
	sw, err := x.f.NewStreamWriter(sheet)
	if err != nil {
		return err
	}
	x.sw = sw
	for i, c := range cols {
		if err := sw.SetColWidth(i+1, i+1, c.Width); err != nil {
			return err
		}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	style, err := x.f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}}})
	if err != nil {
		return err
	}
	head := make([]any, len(cols))
	for i, c := range cols {
		head[i] = excelize.Cell{StyleID: style, Value: c.Title}
	}
	return x.Row(head)
}

// Row appends a row.
func (x *XLSXWriter) Row(values []any) error {
	x.row++
	cell, err := excelize.CoordinatesToCellName(1, x.row)
	if err != nil {
		return err
	}
	return x.sw.SetRow(cell, values)
}

// Appendix adds the sheet 照片附录: a row per photo of each hazard, its
// thumbnail embedded, or a note where there is none.
func (x *XLSXWriter) Appendix(items []AppendixItem) error {
	if x.sw != nil {
		if err := x.sw.Flush(); err != nil {
			return err
		}
		x.sw = nil
	}
	const sheet = "照片附录"
	if _, err := x.f.NewSheet(sheet); err != nil {
		return err
	}
	for col, w := range map[string]float64{"A": 38, "B": 30, "C": 12, "D": 48, "E": 30} {
		if err := x.f.SetColWidth(sheet, col, col, w); err != nil {
			return err
		}
	}
	if err := x.f.SetSheetRow(sheet, "A1", &[]any{"隐患编号", "隐患", "发现日期", "照片", "说明"}); err != nil {
		return err
	}
	row := 1
	for _, it := range items {
		photos := it.Photos
		if len(photos) == 0 {
			photos = []Thumb{{Note: "无照片 / no photo"}}
		}
		for _, ph := range photos {
			row++
			cell := func(col string) string { return col + strconv.Itoa(row) }
			if err := x.f.SetSheetRow(sheet, cell("A"), &[]any{it.HazardID, it.Title, it.Found, "", strings.TrimSpace(ph.Note + " " + ph.SHA256)}); err != nil {
				return err
			}
			if len(ph.JPEG) == 0 {
				continue
			}
			if err := x.f.SetRowHeight(sheet, row, 180); err != nil {
				return err
			}
			if err := x.f.AddPictureFromBytes(sheet, cell("D"), &excelize.Picture{Extension: ".jpg", File: ph.JPEG,
				Format: &excelize.GraphicOptions{AutoFit: true, LockAspectRatio: true, AltText: it.Title}}); err != nil {
				// A thumbnail that does not decode is noted, not fatal.
				if err := x.f.SetCellValue(sheet, cell("E"), "缩略图无法读取 / unreadable thumbnail "+ph.SHA256); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Close finishes the workbook and writes it.
func (x *XLSXWriter) Close() error {
	defer x.f.Close()
	if x.sw != nil {
		if err := x.sw.Flush(); err != nil {
			return err
		}
	}
	_, err := x.f.WriteTo(x.w)
	return err
}

// CSVWriter writes CSV in UTF-8 with a byte order mark, so Excel opens
// the Chinese text correctly.
type CSVWriter struct {
	w   *csv.Writer
	buf []string
}

// NewCSVWriter returns a CSV writer to w.
func NewCSVWriter(w io.Writer) *CSVWriter { return &CSVWriter{w: csv.NewWriter(w)} }

// BOM is the UTF-8 byte order mark a CSV export starts with.
const BOM = "\ufeff"

// Header writes the BOM and the header row.
func (c *CSVWriter) Header(_ string, cols []Column) error {
	titles := make([]string, len(cols))
	for i, col := range cols {
		titles[i] = col.Title
	}
	titles[0] = BOM + titles[0]
	return c.w.Write(titles)
}

// Row writes a row.
func (c *CSVWriter) Row(values []any) error {
	c.buf = c.buf[:0]
	for _, v := range values {
		c.buf = append(c.buf, cellText(v))
	}
	return c.w.Write(c.buf)
}

// Close flushes.
func (c *CSVWriter) Close() error {
	c.w.Flush()
	return c.w.Error()
}

func cellText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
