package mobile_test

import (
	"errors"

	"crypto/sha256"
	"encoding/hex"
	"github.com/fieldsync/fieldsync/syncproto"
	"time"
)

func hashBytes(b []byte) (string, int64, error) {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), int64(len(b)), nil
}

type testClock struct{ t time.Time }

func newClock() *testClock { return &testClock{t: time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time { return c.t }

func (c *testClock) Advance(sec int) { c.t = c.t.Add(time.Duration(sec) * time.Second) }

func asError(err error, target **syncproto.Error) bool { return errors.As(err, target) }
