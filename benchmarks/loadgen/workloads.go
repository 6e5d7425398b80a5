package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"sync"
	"time"

	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

const (
	keyPrefix           = 'k'
	watchPrefix         = 'w' // a prefix of its own, so watchers see only the paced writer's puts
	watchRangeEnd       = "x"
	txnModRevisionBound = 1 << 62 // "mod_revision < bound" always holds: the txn path without CAS failures
	mixedReadShare      = 0.9
	leaseTTLSeconds     = 60
	maxWritesInFlight   = 64
	stampBytes          = 8 // the writer's send time, at the front of each watched value
)

// clockBase is the zero of the watch stamps; writer and watchers live in this one process.
var clockBase = time.Now()

// client is one closed loop (or stream reader) of a run, stopped by cancelling ctx.
type client func(ctx context.Context, rec *recorder)

// workloads set up a run's clients by name: the names and operations of benchmarks/compare/plan.py.
var workloads = map[string]func(r *run, o options) error{
	"put":                unaryWorkload,
	"range":              unaryWorkload, // linearizable: every read goes through ReadIndex
	"serializable-range": unaryWorkload,
	"txn":                unaryWorkload,
	"mixed":              unaryWorkload,
	"lease-keepalive":    keepAliveWorkload,
	"watch":              watchWorkload,
}

func workloadNames() []string {
	names := make([]string, 0, len(workloads))
	for name := range workloads {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// key is 8 bytes: a one-letter prefix and seven digits, as the harness's prefill writes them.
func key(prefix byte, index int) []byte {
	k := make([]byte, 8)
	k[0] = prefix
	for i := 7; i >= 1; i-- {
		k[i] = byte('0' + index%10)
		index /= 10
	}
	return k
}

// sender issues one request of a unary workload on a random key.
type sender func(ctx context.Context) error

func unarySender(workload string, kv pb.KVClient, rng *rand.Rand, value []byte, keyspace int) sender {
	put := func(ctx context.Context, k []byte) error {
		_, err := kv.Put(ctx, &pb.PutRequest{Key: k, Value: value})
		return err
	}
	get := func(ctx context.Context, k []byte, serializable bool) error {
		_, err := kv.Range(ctx, &pb.RangeRequest{Key: k, Serializable: serializable})
		return err
	}
	switch workload {
	case "put":
		return func(ctx context.Context) error { return put(ctx, key(keyPrefix, rng.Intn(keyspace))) }
	case "range":
		return func(ctx context.Context) error { return get(ctx, key(keyPrefix, rng.Intn(keyspace)), false) }
	case "serializable-range":
		return func(ctx context.Context) error { return get(ctx, key(keyPrefix, rng.Intn(keyspace)), true) }
	case "txn":
		return func(ctx context.Context) error {
			k := key(keyPrefix, rng.Intn(keyspace))
			_, err := kv.Txn(ctx, &pb.TxnRequest{
				Compare: []*pb.Compare{{Key: k, Target: pb.Compare_MOD, Result: pb.Compare_LESS,
					TargetUnion: &pb.Compare_ModRevision{ModRevision: txnModRevisionBound}}},
				Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{
					RequestPut: &pb.PutRequest{Key: k, Value: value}}}},
			})
			return err
		}
	case "mixed":
		return func(ctx context.Context) error {
			k := key(keyPrefix, rng.Intn(keyspace))
			if rng.Float64() < mixedReadShare {
				return get(ctx, k, false)
			}
			return put(ctx, k)
		}
	}
	panic("not a unary workload: " + workload)
}

// unaryClient is a closed loop: one request in flight, the next sent as soon as the last is answered.
func unaryClient(send sender, timeout time.Duration) client {
	return func(ctx context.Context, rec *recorder) {
		for ctx.Err() == nil {
			started := time.Now()
			callCtx, cancel := context.WithTimeout(ctx, timeout)
			err := send(callCtx)
			cancel()
			finished := time.Now()
			if err == nil {
				rec.record(finished.Sub(started), finished)
				continue
			}
			if ctx.Err() != nil {
				return // cut off by the window's end: neither an operation nor a failure
			}
			rec.fail(statusName(err))
			pause(ctx, errorPause)
		}
	}
}

func unaryWorkload(r *run, o options) error {
	value := bytes.Repeat([]byte("v"), o.valueSize)
	for number := o.firstClient; number < o.firstClient+o.clients; number++ {
		conn, err := r.pool.forClient(number)
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewSource(o.seed*1_000_003 + int64(number)))
		send := unarySender(o.workload, pb.NewKVClient(conn), rng, value, o.keyspace)
		r.clients = append(r.clients, unaryClient(send, o.timeout))
	}
	return nil
}

// keepAliveClient keeps one lease alive on its own stream, one request in flight; a lost stream is
// reopened.
func keepAliveClient(lease pb.LeaseClient, id int64) client {
	return func(ctx context.Context, rec *recorder) {
		for ctx.Err() == nil {
			stream, err := lease.LeaseKeepAlive(ctx)
			if err != nil {
				if ctx.Err() == nil {
					rec.fail(statusName(err))
					pause(ctx, errorPause)
				}
				continue
			}
			for {
				started := time.Now()
				var answer *pb.LeaseKeepAliveResponse
				if err = stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err == nil || err == io.EOF {
					answer, err = stream.Recv() // after a failed Send, Recv says why the stream ended
				}
				finished := time.Now()
				if err != nil {
					if ctx.Err() == nil {
						rec.fail(statusName(err))
						if err != io.EOF {
							pause(ctx, errorPause)
						}
					}
					break
				}
				if answer.TTL <= 0 {
					rec.fail("LEASE_NOT_FOUND")
				} else {
					rec.record(finished.Sub(started), finished)
				}
			}
		}
	}
}

func keepAliveWorkload(r *run, o options) error {
	for number := o.firstClient; number < o.firstClient+o.clients; number++ {
		conn, err := r.pool.forClient(number)
		if err != nil {
			return err
		}
		lease := pb.NewLeaseClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		granted, err := lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: leaseTTLSeconds})
		cancel()
		if err != nil {
			return fmt.Errorf("granting a lease: %w", err)
		}
		r.leases = append(r.leases, grantedLease{lease, granted.ID})
		r.clients = append(r.clients, keepAliveClient(lease, granted.ID))
	}
	return nil
}

// watcherClient reads an already created watch stream; each event's latency runs from the writer's
// stamp in its value to its arrival.
func watcherClient(stream pb.Watch_WatchClient) client {
	return func(ctx context.Context, rec *recorder) {
		for {
			answer, err := stream.Recv()
			finished := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					rec.fail(statusName(err))
				}
				return
			}
			if answer.Canceled {
				rec.fail("WATCH_CANCELED")
				return
			}
			for _, event := range answer.Events {
				if event.Kv == nil || len(event.Kv.Value) < stampBytes {
					rec.fail("UNSTAMPED_EVENT")
					continue
				}
				sent := clockBase.Add(time.Duration(binary.LittleEndian.Uint64(event.Kv.Value)))
				rec.record(finished.Sub(sent), finished)
			}
		}
	}
}

// pacedWriter puts under the watched prefix at a fixed rate (open loop), at most maxWritesInFlight
// at once, each value stamped with its send time; endpoints take turns.
func pacedWriter(kvs []pb.KVClient, rate float64, valueSize, keyspace int, seed int64, timeout time.Duration) client {
	return func(ctx context.Context, rec *recorder) {
		rng := rand.New(rand.NewSource(seed))
		padding := bytes.Repeat([]byte("v"), valueSize-stampBytes)
		interval := time.Duration(float64(time.Second) / rate)
		slots := make(chan struct{}, maxWritesInFlight)
		var failures sync.Mutex // the puts in flight report their failures concurrently
		var inFlight sync.WaitGroup
		failed := func(name string) {
			failures.Lock()
			rec.fail(name)
			failures.Unlock()
		}
		due := time.Now()
		for sent := 0; pause(ctx, time.Until(due)); due = due.Add(interval) {
			select {
			case slots <- struct{}{}:
			default:
				failed("WRITER_BACKLOG") // the server fell this far behind the pace
				continue
			}
			value := make([]byte, stampBytes, stampBytes+len(padding))
			binary.LittleEndian.PutUint64(value, uint64(time.Since(clockBase)))
			request := &pb.PutRequest{Key: key(watchPrefix, rng.Intn(keyspace)), Value: append(value, padding...)}
			kv := kvs[sent%len(kvs)]
			sent++
			inFlight.Add(1)
			go func() {
				defer inFlight.Done()
				callCtx, cancel := context.WithTimeout(ctx, timeout)
				_, err := kv.Put(callCtx, request)
				cancel()
				<-slots
				if err != nil && ctx.Err() == nil {
					failed(statusName(err))
				}
			}()
		}
		inFlight.Wait()
	}
}

func watchWorkload(r *run, o options) error {
	for number := o.firstClient; number < o.firstClient+o.clients; number++ {
		conn, err := r.pool.forClient(number)
		if err != nil {
			return err
		}
		stream, err := createWatch(r.ctx, pb.NewWatchClient(conn), o.timeout)
		if err != nil {
			return err
		}
		r.clients = append(r.clients, watcherClient(stream))
	}
	if o.writerRate > 0 {
		kvs := make([]pb.KVClient, 0, len(o.endpoints))
		for range o.endpoints {
			conn, err := r.pool.forClient(len(kvs)) // the writer puts through every endpoint in turn
			if err != nil {
				return err
			}
			kvs = append(kvs, pb.NewKVClient(conn))
		}
		if o.valueSize < stampBytes {
			o.valueSize = stampBytes
		}
		r.clients = append(r.clients, pacedWriter(kvs, o.writerRate, o.valueSize, o.keyspace, o.seed, o.timeout))
	}
	return nil
}

// createWatch opens a stream living as long as ctx, watching the writer's prefix, and waits (at most
// timeout) for the server to confirm it.
func createWatch(ctx context.Context, watch pb.WatchClient, timeout time.Duration) (pb.Watch_WatchClient, error) {
	stream, err := watch.Watch(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening a watch stream: %w", err)
	}
	create := &pb.WatchCreateRequest{Key: []byte{watchPrefix}, RangeEnd: []byte(watchRangeEnd)}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}}); err != nil {
		return nil, fmt.Errorf("creating a watch: %w", err)
	}
	answered := make(chan error, 1)
	go func() {
		answer, err := stream.Recv()
		if err == nil && (!answer.Created || answer.Canceled) {
			err = fmt.Errorf("watch was not created: %v", answer)
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		return stream, err
	case <-time.After(timeout):
		return nil, fmt.Errorf("no answer to a watch create within %v", timeout)
	}
}
