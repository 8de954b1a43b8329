package e2e

import "github.com/fieldsync/fieldsync/syncproto"

func mobileCode(err error) string { return syncproto.ErrorCode(err) }
