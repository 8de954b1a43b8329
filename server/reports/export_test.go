package reports_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"image"
	"image/color"
	"image/jpeg"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/syncproto"
)

// readXLSX opens an exported workbook and returns its one sheet's name
// and rows.
func readXLSX(t *testing.T, b []byte) (string, [][]string) {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sheets := f.GetSheetList()
	if len(sheets) != 1 {
		t.Fatalf("sheets %v, want one", sheets)
	}
	rows, err := f.GetRows(sheets[0])
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.GetColWidth(sheets[0], "B")
	if err != nil || w < 20 {
		t.Errorf("column B is %v wide (%v), want the school's width", w, err)
	}
	return sheets[0], rows
}

func TestExportAgainstRecords(t *testing.T) {
	p := generate(99, 2, 4, 3, "2026-09-01", "2026-12-20", 10, testNow)
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		seed(t, t.Context(), p, st.Sync, st.Devices)
		ex := &reports.Exporter{Store: st.Sync.(reports.Store), Dir: st.Devices}
		period, err := reports.ParsePeriod("2026-10-01..2026-11-30", reports.Defaults())
		if err != nil {
			t.Fatal(err)
		}
		o := oracle{p: p}
		names := p.schoolName
		schoolName := func(id string) string {
			if n := names[id]; n != "" {
				return n
			}
			return map[string]string{sampleSchools[0]: "东河县青石镇中心小学"}[id]
		}
		for _, tc := range []struct {
			ledger string
			filter reports.Filter
			title  string
			want   func() map[string][]string // record id → cells to check by column index ("" skips)
			idCol  int
		}{
			{reports.LedgerHazards, reports.Filter{}, "隐患台账", func() map[string][]string {
				m := map[string][]string{}
				for _, h := range p.hazards {
					if h.found > period.To || !(period.Contains(h.found) || h.stage < 4 || period.Contains(h.closed)) {
						continue
					}
					row := make([]string, 16)
					row[2], row[5] = h.title, h.found
					row[6] = map[string]string{"low": "一般", "medium": "较大", "high": "重大"}[h.severity]
					if o.overdue(h) {
						row[10] = "+" // overdue: a positive number of days
					} else {
						row[10] = "-"
					}
					if h.stage == 4 {
						row[7], row[12] = "已消号", h.closed
					}
					if h.stage >= 2 {
						row[8] = h.deadline
					}
					m[h.id] = row
				}
				return m
			}, 15},
			{reports.LedgerVisits, reports.Filter{Zone: p.zones[1]}, "进校督导记录", func() map[string][]string {
				m := map[string][]string{}
				for _, v := range p.visits {
					if period.Contains(v.date) && p.schoolZone[v.school] == p.zones[1] {
						row := make([]string, 13)
						row[0], row[1] = v.date, schoolName(v.school)
						m[v.id] = row
					}
				}
				return m
			}, 12},
			{reports.LedgerObservations, reports.Filter{}, "听课记录", func() map[string][]string {
				m := map[string][]string{}
				for _, ob := range p.obs {
					if period.Contains(ob.date) {
						var total float64
						for _, s := range ob.scores {
							total += s
						}
						row := make([]string, 16)
						row[0], row[9], row[11] = ob.date, strconv.Itoa(ob.minutes), strconv.FormatFloat(total, 'f', -1, 64)
						m[ob.id] = row
					}
				}
				return m
			}, 15},
			{reports.LedgerQuestionnaire, reports.Filter{}, "问卷答卷", func() map[string][]string {
				// One row per answer: the generator gives every response
				// three answers; the id column holds the response id,
				// so the rows of one response share it.
				m := map[string][]string{}
				for _, q := range p.responses {
					if period.Contains(q.date) {
						m[q.id] = []string{q.date, "", "questionnaire.student_burden@3", "学生"}
					}
				}
				return m
			}, 6},
		} {
			t.Run(tc.ledger, func(t *testing.T) {
				var buf bytes.Buffer
				if err := ex.Export(t.Context(), &buf, reports.Spec{Ledger: tc.ledger, Period: period, Filter: tc.filter, Format: "xlsx"}, testNow); err != nil {
					t.Fatal(err)
				}
				sheet, rows := readXLSX(t, buf.Bytes())
				if sheet != tc.title || len(rows) < 2 {
					t.Fatalf("sheet %q with %d rows", sheet, len(rows))
				}
				cols := reports.Columns(tc.ledger)
				for i, c := range cols {
					if rows[0][i] != c.Title {
						t.Errorf("header %d = %q, want %q", i, rows[0][i], c.Title)
					}
				}
				want := tc.want()
				got := map[string]bool{}
				for _, row := range rows[1:] {
					id := row[tc.idCol]
					got[id] = true
					w, ok := want[id]
					if !ok {
						t.Errorf("row of %s not expected", id)
						continue
					}
					for i, cell := range w {
						switch {
						case cell == "":
						case cell == "+":
							if n, err := strconv.Atoi(row[i]); err != nil || n < 1 {
								t.Errorf("%s: column %s = %q, want overdue days", id, cols[i].Title, row[i])
							}
						case cell == "-":
							if i < len(row) && row[i] != "" {
								t.Errorf("%s: column %s = %q, want empty", id, cols[i].Title, row[i])
							}
						case row[i] != cell:
							t.Errorf("%s: column %s = %q, want %q", id, cols[i].Title, row[i], cell)
						}
					}
				}
				for id := range want {
					if !got[id] {
						t.Errorf("no row for %s", id)
					}
				}
				perRecord := 1
				if tc.ledger == reports.LedgerQuestionnaire {
					perRecord = 3
				}
				if len(rows)-1 != perRecord*len(want) {
					t.Errorf("%d rows, want %d", len(rows)-1, perRecord*len(want))
				}

				// The CSV holds the same rows, after a byte order mark.
				buf.Reset()
				if err := ex.Export(t.Context(), &buf, reports.Spec{Ledger: tc.ledger, Period: period, Filter: tc.filter, Format: "csv"}, testNow); err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(buf.Bytes(), []byte("\xef\xbb\xbf")) {
					t.Error("the CSV does not start with a UTF-8 byte order mark")
				}
				recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) != len(rows) || strings.TrimPrefix(recs[0][0], reports.BOM) != cols[0].Title {
					t.Errorf("CSV has %d rows (first %q), the XLSX %d", len(recs), recs[0][0], len(rows))
				}
				for i := 1; i < len(recs); i++ {
					if recs[i][tc.idCol] != rows[i][tc.idCol] {
						t.Errorf("CSV row %d differs from the XLSX's", i)
						break
					}
				}
			})
		}
	})
}

func TestExportRejects(t *testing.T) {
	st := testenv.OpenStores(t, "mem")
	ex := &reports.Exporter{Store: st.Sync.(reports.Store)}
	period, _ := reports.ParsePeriod("2026-10", reports.Defaults())
	for _, tc := range []struct{ ledger, format, field string }{
		{"salaries", "xlsx", "ledger"},
		{reports.LedgerHazards, "pdf", "format"},
	} {
		err := ex.Export(t.Context(), &bytes.Buffer{}, reports.Spec{Ledger: tc.ledger, Period: period, Format: tc.format}, testNow)
		if se := asSyncError(err); se == nil || se.Fields[tc.field] == "" {
			t.Errorf("%s/%s: %v, want a message on %s", tc.ledger, tc.format, err, tc.field)
		}
	}
}

// tinyJPEG returns a small JPEG image.
func tinyJPEG(t *testing.T, shade uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 32, 24))
	for x := range 32 {
		for y := range 24 {
			img.Set(x, y, color.RGBA{shade, uint8(x * 8), uint8(y * 10), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExportPhotoAppendix(t *testing.T) {
	p := generate(5, 1, 2, 2, "2026-11-01", "2026-11-30", 4, testNow)
	st := testenv.OpenStores(t, "mem")
	seed(t, t.Context(), p, st.Sync, st.Devices)
	school := sampleSchools[2]
	photos := map[string][]reports.Thumb{}
	ex := &reports.Exporter{Store: st.Sync.(reports.Store), Dir: st.Devices, Photos: func(_ context.Context, _, hazard string) ([]reports.Thumb, error) {
		// Two photos for every other hazard, one of them not uploaded.
		if len(photos)%2 == 0 {
			photos[hazard] = []reports.Thumb{{SHA256: strings.Repeat("a", 64), JPEG: tinyJPEG(t, uint8(len(photos)))}, {SHA256: strings.Repeat("b", 64), Note: "照片尚未上传"}}
		} else {
			photos[hazard] = nil
		}
		return photos[hazard], nil
	}}
	period, _ := reports.ParsePeriod("2026-11", reports.Defaults())
	var buf bytes.Buffer
	if err := ex.Export(t.Context(), &buf, reports.Spec{Ledger: reports.LedgerHazards, Period: period, Filter: reports.Filter{School: school}, Format: "xlsx", Photos: true}, testNow); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.GetSheetList(); !slices.Equal(got, []string{"隐患台账", "照片附录"}) {
		t.Fatalf("sheets %v", got)
	}
	ledger, _ := f.GetRows("隐患台账")
	rows, _ := f.GetRows("照片附录")
	if len(photos) == 0 || len(ledger)-1 != len(photos) {
		t.Fatalf("%d ledger rows, photos asked for %d hazards", len(ledger)-1, len(photos))
	}
	pictures := 0
	for i, row := range rows[1:] {
		cell := "D" + strconv.Itoa(i+2)
		pics, err := f.GetPictures("照片附录", cell)
		if err != nil {
			t.Fatal(err)
		}
		want := photos[row[0]]
		switch {
		case len(want) == 0:
			if len(pics) != 0 || !strings.Contains(row[4], "无照片") {
				t.Errorf("row %d of %s: %d pictures, note %q; want none and a note", i+2, row[0], len(pics), row[4])
			}
		case strings.Contains(row[4], "照片尚未上传"):
			if len(pics) != 0 {
				t.Errorf("row %d: a picture for a photo not uploaded", i+2)
			}
		default:
			if len(pics) != 1 || !bytes.Equal(pics[0].File, want[0].JPEG) {
				t.Errorf("row %d of %s: %d pictures, want its thumbnail", i+2, row[0], len(pics))
			}
			pictures++
		}
	}
	if pictures == 0 {
		t.Error("no thumbnail embedded")
	}

	// The appendix is for one school's hazard ledger, as XLSX.
	for _, spec := range []reports.Spec{
		{Ledger: reports.LedgerHazards, Period: period, Format: "xlsx", Photos: true},
		{Ledger: reports.LedgerVisits, Period: period, Filter: reports.Filter{School: school}, Format: "xlsx", Photos: true},
		{Ledger: reports.LedgerHazards, Period: period, Filter: reports.Filter{School: school}, Format: "csv", Photos: true},
	} {
		if err := ex.Export(t.Context(), &bytes.Buffer{}, spec, testNow); syncproto.ErrorCode(err) != syncproto.EINVALID {
			t.Errorf("%+v: %v, want invalid", spec, err)
		}
	}
}

// The sample county's monthly form for October 2024 is the feedback
// ledger of that month.
func TestExportFeedbackLedger(t *testing.T) {
	p := generate(1, 0, 0, 0, "2026-11-01", "2026-11-30", 0, testNow)
	st := testenv.OpenStores(t, "mem")
	seed(t, t.Context(), p, st.Sync, st.Devices)
	ex := &reports.Exporter{Store: st.Sync.(reports.Store), Dir: st.Devices}
	period, _ := reports.ParsePeriod("2024-10", reports.Defaults())
	var buf bytes.Buffer
	if err := ex.Export(t.Context(), &buf, reports.Spec{Ledger: reports.LedgerFeedback, Period: period, Format: "csv"}, testNow); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2024-10", "陈立群", "东河县第二初级中学", "已接收", "1", "1", "1", "0", "0", "1", "20"}
	if len(recs) != 2 || !slices.Equal(recs[1][:len(want)], want) || recs[1][len(recs[1])-1] != "0192b000-0000-7000-8000-000000000901" {
		t.Fatalf("feedback ledger %q, want the sample's form %q", recs, want)
	}
}
