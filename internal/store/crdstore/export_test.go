package crdstore

// SetWatchTimeout makes the API server end s's watch requests after sec
// seconds, as it does on its own after half an hour or so.
func SetWatchTimeout(s *Store, sec int64) { s.watchTimeout = &sec }
