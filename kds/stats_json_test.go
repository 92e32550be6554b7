package kds

import (
	"encoding/json"
	"testing"
)

// TestTypeStatsJSON keeps a zone's GET /zone stats camelCase like every
// other key of the API.
func TestTypeStatsJSON(t *testing.T) {
	js, err := json.Marshal(TypeStats{Sent: 1, Acked: 2, Nacked: 3, Received: 4, Refused: 5, LastAckedNonce: "n", Subscribed: true,
		SentBytes: 6, ReceivedBytes: 7, LargestPushBytes: 8, LargestResourceBytes: 9})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sent":1,"acked":2,"nacked":3,"received":4,"refused":5,"lastAckedNonce":"n","subscribed":true,"sentBytes":6,"receivedBytes":7,"largestPushBytes":8,"largestResourceBytes":9}`
	if string(js) != want {
		t.Errorf("TypeStats JSON = %s, want %s", js, want)
	}
}
