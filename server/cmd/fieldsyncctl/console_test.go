package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fieldsync/fieldsync/internal/testenv"
)

// TestUserAndAuditOnRealServers: fieldsyncctl user add creates the first
// admin (the password from the environment, a short one refused), the
// demo's pushes are in the audit log and audit verify finds the chain
// intact; after one entry is changed directly in MongoDB, audit verify
// fails naming it; readmodel rebuild reads the demo's records.
func TestUserAndAuditOnRealServers(t *testing.T) {
	srv := testenv.Fieldsyncd(t, 1)[0]
	vars := map[string]string{"FIELDSYNC_URL": srv.URL, "FIELDSYNC_ADMIN_TOKEN": srv.AdminToken, "FIELDSYNC_USER_PASSWORD": "a long enough password"}
	ctl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), args, &out, func(k string) string { return vars[k] })
		return out.String(), err
	}
	if _, err := ctl("demo"); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl("user", "add", "chen", "陈主任", "office_head,admin"); err != nil || !strings.Contains(out, `"login": "chen"`) {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	vars["FIELDSYNC_USER_PASSWORD"] = "short"
	if _, err := ctl("user", "add", "li", "李", "office_reviewer"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("user add with a short password: %v", err)
	}
	// fieldsyncd chains the audit log every second, off the push path:
	// wait until the demo's changes are in.
	var out string
	var err error
	for range 60 {
		out, err = ctl("audit", "verify")
		if err != nil || !strings.Contains(out, "audit log intact: 0 entries") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "audit log intact") || strings.Contains(out, "intact: 0 entries") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	if out, err := ctl("readmodel", "rebuild"); err != nil || !strings.Contains(out, `"hazards": 1`) {
		t.Errorf("readmodel rebuild: %v\n%s", err, out)
	}

	c, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(t.Context())
	res, err := c.Database(srv.DB).Collection("audit").UpdateOne(t.Context(), bson.D{{Key: "_id", Value: int64(3)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "actor", Value: "someone-else"}}}})
	if err != nil || res.ModifiedCount != 1 {
		t.Fatalf("tampering: %+v %v", res, err)
	}
	out, err = ctl("audit", "verify")
	if err == nil || !strings.Contains(out, "BROKEN at entry 3") {
		t.Errorf("audit verify after tampering with entry 3: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
