package crdstore

// SetWatchTimeout makes the API server end s's watch requests after sec
// seconds, as it does on its own after half an hour or so.
func SetWatchTimeout(s *Store, sec int64) { s.watchTimeout = &sec }

// SetWatchBuffer sets how many events s's watchers may lag behind.
func SetWatchBuffer(s *Store, n int) { s.watchBuffer = n }
