package syncproto

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error codes. They travel on the wire as {"error":{"code":…}} and are
// mapped to HTTP statuses in one table in server/api. The list is
// append-only: never rename or remove a code, only add new ones at the end,
// because phones in the field keep old builds for months.
const (
	EINVALID      = "invalid"      // the request or a change is malformed or fails validation (400)
	ENOTFOUND     = "not_found"    // the thing asked for does not exist (404)
	ECONFLICT     = "conflict"     // the request contradicts stored state (409)
	ESTALE        = "stale"        // the cursor is from another epoch or below the horizon: start over (410)
	EUNAUTHORIZED = "unauthorized" // no valid credentials (401)
	EFORBIDDEN    = "forbidden"    // credentials are valid but not for this (403)
	ETOOLARGE     = "too_large"    // the body or batch exceeds the advertised limits (413)
	EUNSUPPORTED  = "unsupported"  // unsupported media type (415)
	EUNAVAILABLE  = "unavailable"  // a dependency is down; retry later (503)
	EINTERNAL     = "internal"     // anything else; details are logged, never sent (500)
	EOPREUSED     = "op_reused"    // an op id was seen before with different content (409)
	EPROTOCOL     = "protocol"     // unsupported protocol version (400)
)

// Error is the one error type of the sync protocol. Code is for machines,
// Message is for people, and Fields maps a field key of a record
// ("feedback.to_name", "steps[3].at") to a message about that field.
//
// Any error that is not an *Error is reported as EINTERNAL with the message
// "Internal error.": storage drivers' errors never reach a phone.
type Error struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Error implements the error interface.
func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (", e.Code, e.Message)
	for i, k := range keys {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", k, e.Fields[k])
	}
	b.WriteString(")")
	return b.String()
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EINVALID *Error whose Fields hold the given
// field-level messages.
func FieldError(message string, fields map[string]string) *Error {
	return &Error{Code: EINVALID, Message: message, Fields: fields}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for a
// nil error, and EINTERNAL for any other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the human message of the first *Error in err's
// chain, or "Internal error." for any other error.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
