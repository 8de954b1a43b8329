package testenv_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fieldsync/fieldsync/internal/testenv"
)

func TestName(t *testing.T) {
	t.Run("sub test/with spaces:and.dots", func(t *testing.T) {
		re := regexp.MustCompile(`^t_[0-9]+_TestName_sub_test_with_spaces_and_dots$`)
		a, b := testenv.Name(t, 100), testenv.Name(t, 100)
		if !re.MatchString(a) || !re.MatchString(b) || a == b {
			t.Errorf("Name = %q, %q; want two different names matching %s", a, b, re)
		}
		if got := testenv.Name(t, 30); len(got) != 30 {
			t.Errorf("Name(t, 30) = %q, %d bytes", got, len(got))
		}
	})
}

// fakeTB records what Lookup does with the test.
type fakeTB struct {
	testing.TB
	mu             sync.Mutex
	fatal, skipped string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func lookup(tb *fakeTB, key string) string {
	var v string
	done := make(chan struct{})
	go func() {
		defer close(done)
		v = testenv.Lookup(tb, key)
	}()
	<-done
	return v
}

// TestLookup checks the skip-or-fail rule. It changes the environment, so
// it does not run in parallel.
func TestLookup(t *testing.T) {
	const key = "FIELDSYNC_TESTENV_PROBE"
	tests := []struct {
		name, value, require string
		wantValue            string
		wantFatal, wantSkip  bool
	}{
		{name: "Set", value: "x", wantValue: "x"},
		{name: "SetAndRequired", value: "x", require: "1", wantValue: "x"},
		{name: "MissingSkips", wantSkip: true},
		{name: "MissingFailsWhenRequired", require: "1", wantFatal: true},
		{name: "ExplicitFalseSkips", require: "false", wantSkip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(key, tt.value)
			t.Setenv(testenv.EnvRequire, tt.require)
			tb := &fakeTB{TB: t}
			got := lookup(tb, key)
			if got != tt.wantValue || (tb.fatal != "") != tt.wantFatal || (tb.skipped != "") != tt.wantSkip {
				t.Fatalf("Lookup = %q, fatal %q, skipped %q", got, tb.fatal, tb.skipped)
			}
			if msg := tb.fatal + tb.skipped; msg != "" && !strings.Contains(msg, key) {
				t.Errorf("message %q does not name %s", msg, key)
			}
		})
	}
}

// TestMongo checks that a test gets a database of its own, dropped after.
func TestMongo(t *testing.T) {
	var name string
	t.Run("Inner", func(t *testing.T) {
		db := testenv.Mongo(t)
		name = db.Name()
		if _, err := db.Database().Collection("c").InsertOne(t.Context(), bson.D{{Key: "k", Value: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		return // Inner was skipped, or failed and so failed this test
	}
	db := testenv.Mongo(t)
	names, err := db.Database().Client().ListDatabaseNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// TestMinio checks that a test's objects live under its prefix and are
// removed after it.
func TestMinio(t *testing.T) {
	var prefix string
	t.Run("Inner", func(t *testing.T) {
		st := testenv.Minio(t)
		prefix = st.Prefix()
		if !strings.HasPrefix(prefix, "t_") || !strings.HasSuffix(prefix, "/") {
			t.Errorf("Prefix = %q", prefix)
		}
		for _, name := range []string{"a.jpg", "dir/b.jpg"} {
			data := []byte("photo " + name)
			if _, err := st.Client().PutObject(t.Context(), st.Bucket(), st.Key(name), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if prefix == "" {
		return // Inner was skipped, or failed and so failed this test
	}
	st := testenv.Minio(t)
	for obj := range st.Client().ListObjects(context.Background(), st.Bucket(), minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		t.Errorf("object %s (err %v) still exists after its test ended", obj.Key, obj.Err)
	}
}
