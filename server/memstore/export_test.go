package memstore

// SetAfterAlloc sets the hook that runs between a block's allocation and
// its write.
func (s *SyncStore) SetAfterAlloc(f func(scope string, first int64, n int)) { s.afterAlloc = f }
