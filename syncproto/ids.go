package syncproto

import (
	"fmt"

	"github.com/google/uuid"
)

// parseUUID accepts only the canonical 36-character form, so that one id
// has one spelling everywhere (map keys, unique indexes, file names).
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.UUID{}, fmt.Errorf("%q is not a canonical UUID", s)
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, err
	}
	if id.String() != s {
		return uuid.UUID{}, fmt.Errorf("%q is not a canonical (lower-case) UUID", s)
	}
	return id, nil
}

// ParseID parses a record, device or op id in canonical UUID form.
func ParseID(s string) (uuid.UUID, error) { return parseUUID(s) }
