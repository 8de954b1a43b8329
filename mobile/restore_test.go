package mobile_test

import (
	"io"
	"os"
	"testing"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestRestoredFromBackup: a phone syncs, its database is backed up, it
// makes and syncs more edits, the old backup is restored, and it makes
// new edits. Nothing is lost: the server keeps the edits synced before
// the restore, the restored phone's new edits win over what it sent
// before (clock-based counters), and the phone converges.
func TestRestoredFromBackup(t *testing.T) {
	srv := mobiletest.NewServer()
	p, other := newPhone(t, srv, "p"), newPhone(t, srv, "other")
	clock := newClock()
	p.E.Close()
	p.Opts.Now = clock.Now
	p.Open(t)

	r := p.save(hazardDraft("备份前"))
	pending := p.save(hazardDraft("备份时未同步"))
	p.sync()
	p.save(mobile.Draft{ID: pending.ID, Values: vals("severity", "low")}) // unsent at backup time
	backup := p.Path + ".bak"
	p.E.Close()
	copyFile(t, p.Path, backup)
	p.Open(t)

	clock.Advance(3600)
	// After the backup: more edits, synced. The pending entry gets a
	// folded edit, so the server learns its op id with more content.
	p.save(mobile.Draft{ID: pending.ID, Values: vals("severity", "high", "title", "备份后修改")})
	after := p.save(hazardDraft("备份后新建"))
	p.save(mobile.Draft{ID: r.ID, Values: vals("description", "备份后描述")})
	p.sync()

	// The phone is wiped and restored from the old backup.
	p.E.Close()
	copyFile(t, backup, p.Path)
	p.Open(t)
	clock.Advance(3600)
	p.save(mobile.Draft{ID: r.ID, Values: vals("description", "恢复后描述")})
	fresh := p.save(hazardDraft("恢复后新建"))
	rep := p.sync()
	t.Logf("sync after restore: %+v", rep)
	p.sync()
	other.sync()
	assertConverged(t, srv, p, other)

	recs := srv.Records()
	for _, c := range []struct {
		rec   *syncproto.Record
		field string
		want  string
	}{
		{recs[after.ID], "title", `"备份后新建"`},   // synced after the backup, unknown to the backup
		{recs[fresh.ID], "title", `"恢复后新建"`},   // made after the restore
		{recs[r.ID], "description", `"恢复后描述"`}, // the restored phone's edit wins over its pre-wipe one
		{recs[pending.ID], "title", `"备份后修改"`},
		{recs[pending.ID], "severity", `"high"`},
	} {
		if c.rec == nil {
			t.Fatalf("record lost")
		}
		if got := string(c.rec.Value(c.field)); got != c.want {
			t.Errorf("%s %s = %s, want %s", c.rec.ID, c.field, got, c.want)
		}
		if c.rec.Fields[c.field].InConflict() {
			t.Errorf("%s %s in conflict: the restored phone's edit should dominate", c.rec.ID, c.field)
		}
	}
}
