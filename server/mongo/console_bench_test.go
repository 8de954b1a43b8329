package mongo_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/syncproto"
)

// BenchmarkHazardQueue measures the console's hazard queue page on the
// read model with FIELDSYNC_BENCH_RECORDS (default 100000) hazards in 40
// schools of 5 zones, and the read-model update of one accepted change
// (make bench; alone, on the test stack):
//
//	deploy/stack.sh exec -- go test ./server/mongo -run '^$' -bench HazardQueue -timeout 30m
//
// A page is what GET /console/hazards reads: one page of 50 rows and the
// counts per status (one count per status, each an equality). The body
// runs once whatever b.N is; it prints the median of 3 runs per filter as
// it goes.
func BenchmarkHazardQueue(b *testing.B) {
	queueOnce(b)
}

var queueRan bool

func queueOnce(b *testing.B) {
	if queueRan {
		return
	}
	queueRan = true
	n := envInt("FIELDSYNC_BENCH_RECORDS", 100000)
	db := testenv.Mongo(b)
	store := servermongo.NewConsoleStore(db.Database())
	ctx := b.Context()
	if err := store.EnsureIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(14, 1))
	var schools, zones []string
	for z := range 5 {
		zones = append(zones, uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "zone %d", z)).String())
	}
	for i := range 40 {
		id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "school %d", i)).String()
		schools = append(schools, id)
		if err := store.PutSchool(ctx, server.SchoolRow{ID: id, Name: fmt.Sprintf("学校%02d", i), ZoneID: zones[i%5]}); err != nil {
			b.Fatal(err)
		}
	}
	statuses := []string{syncproto.HazardReported, syncproto.HazardConfirmed, syncproto.HazardNoticeIssued, syncproto.HazardRectifying,
		syncproto.HazardPendingVerification, syncproto.HazardVerified, syncproto.HazardClosed, syncproto.HazardClosed, syncproto.HazardClosed, syncproto.HazardRejected}
	sevs := []string{"low", "medium", "high"}
	today := time.Now().In(syncproto.ChinaTime)
	start := time.Now()
	coll := db.Database().Collection(servermongo.HazardViewCollection)
	var ids []string
	for done := 0; done < n; {
		batch := make([]any, 0, 1000)
		for ; len(batch) < 1000 && done < n; done++ {
			id := uuid.Must(uuid.NewV7()).String()
			ids = append(ids, id)
			sc := rng.IntN(len(schools))
			sev := sevs[rng.IntN(3)]
			rank := slices.Index(sevs, sev) + 1
			reported := today.AddDate(0, 0, -rng.IntN(700))
			batch = append(batch, bson.D{
				{Key: "_id", Value: id}, {Key: "school_id", Value: schools[sc]}, {Key: "zone_id", Value: zones[sc%5]},
				{Key: "title", Value: fmt.Sprintf("隐患 %d", done)}, {Key: "severity", Value: sev}, {Key: "severity_rank", Value: rank},
				{Key: "status", Value: statuses[rng.IntN(len(statuses))]}, {Key: "deadline", Value: reported.AddDate(0, 0, 30).Format(time.DateOnly)},
				{Key: "needs_review", Value: false}, {Key: "reported_at", Value: reported.UTC()}, {Key: "updated_at", Value: reported.UTC()},
				{Key: "photos", Value: 2}, {Key: "events", Value: 3}, {Key: "rev", Value: int64(3)},
				{Key: "reported_month", Value: servermongo.ReportedMonth(reported)},
			})
		}
		if _, err := coll.InsertMany(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	say := func(format string, args ...any) { fmt.Printf("BenchmarkHazardQueue: "+format+"\n", args...) }
	say("stored %d hazard rows in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := store.RecountSchools(ctx, schools); err != nil {
		b.Fatal(err)
	}
	say("counted %d schools in %s", len(schools), time.Since(start).Round(time.Millisecond))

	base := server.HazardFilter{AllSchools: true, Today: today.Format(time.DateOnly), Limit: 50}
	scoped := base
	scoped.AllSchools, scoped.Schools = false, schools[:8]
	filters := []struct {
		name string
		f    func(server.HazardFilter) server.HazardFilter
		from server.HazardFilter
	}{
		{"county, newest", func(f server.HazardFilter) server.HazardFilter { return f }, base},
		{"status=notice_issued", func(f server.HazardFilter) server.HazardFilter { f.Status = syncproto.HazardNoticeIssued; return f }, base},
		{"school+status", func(f server.HazardFilter) server.HazardFilter {
			f.School, f.Status = schools[3], syncproto.HazardRectifying
			return f
		}, base},
		{"zone+severity=high, urgent", func(f server.HazardFilter) server.HazardFilter {
			f.Zone, f.Severity, f.Sort = zones[1], "high", "urgent"
			return f
		}, base},
		{"overdue", func(f server.HazardFilter) server.HazardFilter { f.Overdue = true; return f }, base},
		{"8-school scope, reported", func(f server.HazardFilter) server.HazardFilter { f.Status = syncproto.HazardReported; return f }, scoped},
	}
	median := func(run func()) time.Duration {
		var ds []time.Duration
		for range 3 {
			t0 := time.Now()
			run()
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		return ds[1]
	}
	for _, fl := range filters {
		f := fl.f(fl.from)
		var rows []server.HazardRow
		var rowsD, countsD time.Duration
		rowsD = median(func() {
			var err error
			if rows, err = store.Hazards(ctx, f); err != nil {
				b.Fatal(err)
			}
		})
		countsD = median(func() {
			if _, err := store.HazardCounts(ctx, f); err != nil {
				b.Fatal(err)
			}
		})
		say("%-28s rows %3d: rows %7.1f ms, counts per status %7.1f ms", fl.name, len(rows), msOf(rowsD), msOf(countsD))
		b.ReportMetric(msOf(rowsD+countsD), "ms/page:"+strings.NewReplacer(" ", "", ",", "_", "=", "_", "+", "_").Replace(fl.name))
	}
	// The read-model update of an accepted change: one row replaced at
	// its next revision, and its school's counts recomputed.
	rev := int64(4)
	upd := median(func() {
		id := ids[rng.IntN(len(ids))]
		err := store.PutHazard(ctx, server.HazardRow{ID: id, SchoolID: schools[0], ZoneID: zones[0], Title: "更新", Severity: "high", SeverityRank: 3,
			Status: syncproto.HazardConfirmed, Rev: rev, ReportedAt: today, UpdatedAt: today})
		if err == nil {
			err = store.RecountSchools(ctx, schools[:1])
		}
		if err != nil {
			b.Fatal(err)
		}
		rev++
	})
	say("read-model update of one hazard at %d rows (row and its school's counts): %.1f ms", n, msOf(upd))
	b.ReportMetric(msOf(upd), "ms/update")
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
