package mobile_test

import (
	"crypto/sha256"
	"encoding/hex"
)

func hashBytes(b []byte) (string, int64, error) {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), int64(len(b)), nil
}
