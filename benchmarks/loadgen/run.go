package main

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

type grantedLease struct {
	lease pb.LeaseClient
	id    int64
}

// run is one run's connections, leases and clients, from setup to close.
type run struct {
	options options
	pool    *pool
	ctx     context.Context // every request and stream of the run; cancelled at the window's end
	cancel  context.CancelFunc
	clients []client
	leases  []grantedLease
}

func setUp(o options) (*run, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{options: o, pool: newPool(o.endpoints, o.clientsPerConn, o.timeout), ctx: ctx, cancel: cancel}
	if err := workloads[o.workload](r, o); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// drive runs every client from now (the warm-up) until the window ends; it returns the latencies
// inside the window, every failure by status, and this process's CPU seconds inside the window.
func (r *run) drive(w window) ([]float64, map[string]int, float64) {
	recorders := make([]*recorder, len(r.clients))
	var running sync.WaitGroup
	for i, c := range r.clients {
		recorders[i] = newRecorder(w)
		running.Add(1)
		go func(c client, rec *recorder) {
			defer running.Done()
			c(r.ctx, rec)
		}(c, recorders[i])
	}
	time.Sleep(time.Until(w.start))
	cpuStart := cpuSeconds()
	time.Sleep(time.Until(w.end))
	cpu := cpuSeconds() - cpuStart
	r.cancel() // requests still in flight would complete outside the window
	running.Wait()

	total := 0
	for _, rec := range recorders {
		total += len(rec.latencies)
	}
	latencies := make([]float64, 0, total)
	errors := map[string]int{}
	for _, rec := range recorders {
		latencies = append(latencies, rec.latencies...)
		for name, count := range rec.errors {
			errors[name] += count
		}
	}
	return latencies, errors, cpu
}

// close ends every stream, revokes the run's leases (a lease left behind would expire by itself after
// its TTL, so failures are ignored) and closes the connections.
func (r *run) close() {
	r.cancel()
	var revoking sync.WaitGroup
	for _, granted := range r.leases {
		revoking.Add(1)
		go func(granted grantedLease) {
			defer revoking.Done()
			ctx, cancel := context.WithTimeout(context.Background(), r.options.timeout)
			defer cancel()
			granted.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: granted.id})
		}(granted)
	}
	revoking.Wait()
	r.pool.close()
}
