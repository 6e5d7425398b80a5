package main

import (
	"context"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorPause keeps a failing server from turning a client into a spin loop.
const errorPause = 10 * time.Millisecond

// recorder is what one client saw: latencies of the operations completed inside the window, and
// every failure of the run by gRPC status. Each belongs to one goroutine, so none needs a lock.
type recorder struct {
	window    window
	latencies []float64
	errors    map[string]int
}

func newRecorder(w window) *recorder {
	return &recorder{window: w, latencies: make([]float64, 0, 1024), errors: map[string]int{}}
}

func (r *recorder) record(latency time.Duration, finished time.Time) {
	if r.window.contains(finished) {
		r.latencies = append(r.latencies, latency.Seconds())
	}
}

func (r *recorder) fail(name string) {
	r.errors[name]++
}

// statusNames are gRPC's canonical code names, as Python's grpc.StatusCode spells them, so both
// load generators report errors alike.
var statusNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL",
	codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

func statusName(err error) string {
	if err == io.EOF {
		return "EOF"
	}
	if s, ok := status.FromError(err); ok {
		if name, known := statusNames[s.Code()]; known {
			return name
		}
	}
	return "UNKNOWN"
}

// pause sleeps for d unless ctx ends first; false when it did.
func pause(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
