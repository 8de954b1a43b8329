package reports_test

import (
	"context"
	"encoding/csv"
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/memstore"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/server/reports"
)

// peakRows wraps a RowWriter and samples the live heap every 1000 rows.
type peakRows struct {
	reports.RowWriter
	n    int
	peak uint64
	gc   bool // collect before each sample: measure the live heap
}

func (p *peakRows) Row(v []any) error {
	p.n++
	if p.n%1000 == 0 {
		p.sample()
	}
	return p.RowWriter.Row(v)
}

func (p *peakRows) sample() {
	if p.gc {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	p.peak = max(p.peak, m.HeapAlloc)
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }

// BenchmarkHazardLedger exports a ledger of 10,000 hazards (100 schools
// of 100) from the in-memory store as XLSX and as CSV, against a
// baseline that writes the same 10,000 rows as CSV straight from memory.
// heap-MB is the largest heap (live and garbage) seen during a run,
// sampled every 1000 rows, above the heap before it; live-MB is the
// largest live heap (collected before each sample, in one extra run
// outside the timing) above the live heap before it: what the export
// holds, which stays flat as rows grow.
//
// With the test servers configured (make bench, or deploy/stack.sh exec),
// BenchmarkHazardLedgerFerretDB runs the same exports reading FerretDB.
func BenchmarkHazardLedger(b *testing.B) {
	sync, devices := memstore.NewSyncStore(nil), memstore.NewDeviceStore()
	benchLedger(b, sync, devices)
}

func BenchmarkHazardLedgerFerretDB(b *testing.B) {
	db := testenv.Mongo(b)
	sync, devices := servermongo.NewSyncStore(db.Database()), servermongo.NewDeviceStore(db.Database())
	if err := sync.EnsureIndexes(b.Context()); err != nil {
		b.Fatal(err)
	}
	if err := devices.EnsureIndexes(b.Context()); err != nil {
		b.Fatal(err)
	}
	benchLedger(b, sync, devices)
}

type benchStore interface {
	server.SyncStore
	reports.Store
}

func benchLedger(b *testing.B, sync benchStore, devices server.DeviceStore) {
	ctx := context.Background()
	p := generate(10000, 4, 25, 8, "2026-11-01", "2026-11-30", 100, testNow)
	seed(b, ctx, p, sync, devices)
	ex := &reports.Exporter{Store: sync, Dir: devices}
	period, _ := reports.ParsePeriod("2026-01-01..2026-12-31", reports.Defaults())
	spec := reports.Spec{Ledger: reports.LedgerHazards, Period: period}

	newRows := func(format string, out io.Writer) reports.RowWriter {
		if format == "xlsx" {
			return reports.NewXLSXWriter(out)
		}
		return reports.NewCSVWriter(out)
	}
	run := func(b *testing.B, format string) {
		var rows int
		var peak uint64
		var size int64
		// The live heap, once.
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		live := &peakRows{RowWriter: newRows(format, io.Discard), gc: true}
		if err := ex.Rows(ctx, live, spec, testNow); err != nil {
			b.Fatal(err)
		}
		live.sample()
		if err := live.Close(); err != nil {
			b.Fatal(err)
		}
		liveMB := float64(live.peak-min(live.peak, base.HeapAlloc)) / (1 << 20)
		for b.Loop() {
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			out := &countWriter{}
			rw := newRows(format, out)
			pr := &peakRows{RowWriter: rw}
			if err := ex.Rows(ctx, pr, spec, testNow); err != nil {
				b.Fatal(err)
			}
			pr.sample()
			if err := rw.Close(); err != nil {
				b.Fatal(err)
			}
			rows, size = pr.n, out.n
			if pr.peak > before.HeapAlloc {
				peak = max(peak, pr.peak-before.HeapAlloc)
			}
		}
		if rows < 10000 {
			b.Fatalf("%d rows, want 10,000", rows)
		}
		b.ReportMetric(float64(rows), "rows")
		b.ReportMetric(liveMB, "live-MB")
		b.ReportMetric(float64(peak)/(1<<20), "heap-MB")
		b.ReportMetric(float64(size)/(1<<20), "file-MB")
	}
	b.Run("xlsx", func(b *testing.B) { b.ReportAllocs(); run(b, "xlsx") })
	b.Run("csv", func(b *testing.B) { b.ReportAllocs(); run(b, "csv") })
	b.Run("raw-csv-baseline", func(b *testing.B) {
		b.ReportAllocs()
		rows := make([][]string, len(p.hazards))
		for i, h := range p.hazards {
			rows[i] = []string{strconv.Itoa(i + 1), p.schoolName[h.school], h.title, "fire", "教学楼", h.found, h.severity, strconv.Itoa(h.stage),
				h.deadline, "", "", "总务主任（总务） 13800000000", h.closed, "0", "", h.id}
		}
		for b.Loop() {
			w := csv.NewWriter(io.Discard)
			for _, r := range rows {
				if err := w.Write(r); err != nil {
					b.Fatal(err)
				}
			}
			w.Flush()
		}
		b.ReportMetric(float64(len(rows)), "rows")
	})
}

// BenchmarkQuotas loads the county of BenchmarkHazardLedger (10,300
// hazards, 100 schools and their visits) and computes a semester's
// quotas: what GET /v1/reports/quotas does per request.
func BenchmarkQuotas(b *testing.B) {
	b.Run("mem", func(b *testing.B) {
		benchQuotas(b, memstore.NewSyncStore(nil), memstore.NewDeviceStore())
	})
	b.Run("ferretdb", func(b *testing.B) {
		db := testenv.Mongo(b)
		sync, devices := servermongo.NewSyncStore(db.Database()), servermongo.NewDeviceStore(db.Database())
		if err := sync.EnsureIndexes(b.Context()); err != nil {
			b.Fatal(err)
		}
		if err := devices.EnsureIndexes(b.Context()); err != nil {
			b.Fatal(err)
		}
		benchQuotas(b, sync, devices)
	})
}

func benchQuotas(b *testing.B, sync benchStore, devices server.DeviceStore) {
	ctx := context.Background()
	p := generate(10000, 4, 25, 8, "2026-09-01", "2026-12-20", 100, testNow)
	seed(b, ctx, p, sync, devices)
	period, _ := reports.ParsePeriod("2026-2027-1", reports.Defaults())
	b.ReportAllocs()
	var schools int
	for b.Loop() {
		c, err := reports.Load(ctx, sync, devices, reports.Scope{}, testNow)
		if err != nil {
			b.Fatal(err)
		}
		schools = len(reports.Compute(c, period, reports.Filter{}).Schools)
	}
	b.ReportMetric(float64(schools), "schools")
}
