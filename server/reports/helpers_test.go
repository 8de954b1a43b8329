package reports_test

import (
	"errors"

	"github.com/fieldsync/fieldsync/syncproto"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func asSyncError(err error) *syncproto.Error {
	var e *syncproto.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
