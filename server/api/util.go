package api

import (
	"encoding/json"
	"time"
)

// rawJSON is a JSON value kept as bytes, like json.RawMessage, for
// request members whose value is any JSON.
type rawJSON = json.RawMessage

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
