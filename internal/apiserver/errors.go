package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	// Error says what went wrong and what to do.
	Error string `json:"error"`
	// Causes names each bad field of an invalid resource.
	Causes []resource.Violation `json:"causes,omitempty"`
}

// httpError is an error with the status it should be answered with.
type httpError struct {
	status int
	msg    string
	causes []resource.Violation
}

func (e *httpError) Error() string { return e.msg }

func badRequest(msg string) error { return &httpError{status: http.StatusBadRequest, msg: msg} }
func methodNotAllowed(msg string) error {
	return &httpError{status: http.StatusMethodNotAllowed, msg: msg}
}
func conflict(msg string) error { return &httpError{status: http.StatusConflict, msg: msg} }
func notFound(msg string) error { return &httpError{status: http.StatusNotFound, msg: msg} }
func fieldError(field, msg string) error {
	return &httpError{status: http.StatusBadRequest, msg: field + ": " + msg,
		causes: []resource.Violation{{Field: field, Message: msg}}}
}

// writeError maps err to a status: validation 400, missing 404, version
// conflicts and existing keys 409, a store that did not answer in time
// 503, anything else 500.
func writeError(w http.ResponseWriter, err error) {
	body := ErrorBody{Error: err.Error()}
	status := http.StatusInternalServerError
	var he *httpError
	var ve *resource.ValidationError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		status, body.Causes = he.status, he.causes
	case errors.As(err, &ve):
		status, body.Causes = http.StatusBadRequest, ve.Violations
		body.Error = ve.Title() + ": fix the fields listed in causes"
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
		body.Error = fmt.Sprintf("request body is larger than %s, this API's limit: send resources one at a time", sizeString(mbe.Limit))
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), context.DeadlineExceeded.Error()):
		// The request's store timeout (Resources.bounded), whether the
		// store returned the context's error or its own words for it.
		status = http.StatusServiceUnavailable
		body.Error = "the store did not answer in time (etcd may be unreachable or without a quorum: GET /readyz says more); " +
			"a write may still be applied: read the resource back before you retry"
	case store.IsNotFound(err):
		status = http.StatusNotFound
	case store.IsConflict(err), store.IsAlreadyExists(err):
		status = http.StatusConflict
	}
	writeJSON(w, status, body)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"error":"encoding the response failed"}`)
	}
	writeRawJSON(w, status, data)
}

func writeRawJSON(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
	w.Write([]byte("\n"))
}

// sizeString writes a byte count in MiB or KiB when it is a whole number of
// them.
func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
