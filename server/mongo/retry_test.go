package mongo

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

func TestRetry(t *testing.T) {
	internal := mongo.CommandError{Code: 1, Name: "InternalError", Message: "timeout: read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout"}
	dup := mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000, Message: "duplicate key"}}}
	writeInternal := mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 1, Message: "internal"}}}
	bulkInternal := mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 1, Message: "internal"}}}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		ctx       context.Context
		errs      []error // what op returns on each call; nil after the list
		wantCalls int
		wantErr   error
	}{
		{"Succeeds", context.Background(), nil, 1, nil},
		{"InternalThenSuccess", context.Background(), []error{internal}, 2, nil},
		{"WriteInternalThenSuccess", context.Background(), []error{writeInternal, writeInternal}, 3, nil},
		{"BulkInternalThenSuccess", context.Background(), []error{bulkInternal}, 2, nil},
		{"InternalEveryTime", context.Background(), []error{internal, internal, internal, internal}, retryAttempts, internal},
		{"DuplicateIsFinal", context.Background(), []error{dup}, 1, dup},
		{"NoDocumentsIsFinal", context.Background(), []error{mongo.ErrNoDocuments}, 1, mongo.ErrNoDocuments},
		{"WrappedInternal", context.Background(), []error{fmt.Errorf("insert: %w", internal)}, 2, nil},
		{"CancelledContextIsFinal", cancelled, []error{internal}, 1, internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := retry(tt.ctx, func() error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("op ran %d times, want %d", calls, tt.wantCalls)
			}
			if (err == nil) != (tt.wantErr == nil) || (err != nil && !errors.Is(err, tt.wantErr) && err.Error() != tt.wantErr.Error()) {
				t.Errorf("retry = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
