package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"time"

	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

// maxTxnOps is etcd's default --max-txn-ops, which pyetcd keeps too.
const maxTxnOps = 128

// fillOptions are the command line of `loadgen fill`: which store to write and how hard to push.
type fillOptions struct {
	endpoints []string
	keyspace  int
	revisions int
	valueSize int
	txnOps    int
	inFlight  int
	seed      int64
	timeout   time.Duration
}

// fillResult is the one line `loadgen fill` prints when it is done.
type fillResult struct {
	Puts     int     `json:"puts"`
	Txns     int     `json:"txns"`
	Seconds  float64 `json:"seconds"`
	Revision int64   `json:"revision"` // the store's revision after the last txn
}

func parseFillOptions(args []string) (fillOptions, error) {
	var o fillOptions
	var endpoints string
	var timeoutS float64
	flags := flag.NewFlagSet("loadgen fill", flag.ContinueOnError)
	flags.StringVar(&endpoints, "endpoints", "", "comma-separated host:port; txns take turns over them")
	flags.IntVar(&o.keyspace, "keyspace", 100000, "keys 0..keyspace-1, named as the workloads name them")
	flags.IntVar(&o.revisions, "revisions", 1, "how many times every key is written (its history's length)")
	flags.IntVar(&o.valueSize, "value-size", 256, "bytes per value")
	flags.IntVar(&o.txnOps, "txn-ops", maxTxnOps, "puts per txn")
	flags.IntVar(&o.inFlight, "in-flight", 16, "txns in flight at once")
	flags.Int64Var(&o.seed, "seed", 1, "seed of the order the keys are written in")
	flags.Float64Var(&timeoutS, "timeout", 60, "seconds before one txn counts as failed")
	if err := flags.Parse(args); err != nil {
		return o, err
	}
	o.endpoints = splitEndpoints(endpoints)
	o.timeout = time.Duration(timeoutS * float64(time.Second))
	switch {
	case len(o.endpoints) == 0:
		return o, fmt.Errorf("-endpoints is required")
	case o.keyspace < 1 || o.revisions < 1 || o.valueSize < 0 || o.inFlight < 1 || o.timeout <= 0:
		return o, fmt.Errorf("-keyspace, -revisions, -in-flight and -timeout must be positive")
	case o.txnOps < 1 || o.txnOps > maxTxnOps:
		return o, fmt.Errorf("-txn-ops must be between 1 and %d", maxTxnOps)
	}
	return o, nil
}

// fill writes every key of the keyspace `revisions` times, txnOps puts per txn, inFlight txns at once,
// and stops at the first failure: a half-written store must not be benchmarked as a whole one. Keys go
// in a seeded random order, as users' keys arrive, not sorted: a server whose key index is cheap only for
// keys created in order must not be flattered.
func fill(o fillOptions) (fillResult, error) {
	p := newPool(o.endpoints, 1, o.timeout)
	defer p.close()
	kvs := make([]pb.KVClient, len(o.endpoints))
	for i := range o.endpoints {
		conn, err := p.forClient(i)
		if err != nil {
			return fillResult{}, err
		}
		kvs[i] = pb.NewKVClient(conn)
	}
	value := bytes.Repeat([]byte("v"), o.valueSize)
	order := rand.New(rand.NewSource(o.seed)).Perm(o.keyspace)
	batchesPerPass := (o.keyspace + o.txnOps - 1) / o.txnOps
	batches := make(chan int)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		workers  sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		revision int64
		txns     int
	)
	started := time.Now()
	for worker := 0; worker < o.inFlight; worker++ {
		workers.Add(1)
		go func(kv pb.KVClient) {
			defer workers.Done()
			for batch := range batches {
				first := (batch % batchesPerPass) * o.txnOps
				last := first + o.txnOps
				if last > o.keyspace {
					last = o.keyspace
				}
				ops := make([]*pb.RequestOp, 0, last-first)
				for _, index := range order[first:last] {
					ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{
						RequestPut: &pb.PutRequest{Key: key(keyPrefix, index), Value: value}}})
				}
				callCtx, callCancel := context.WithTimeout(ctx, o.timeout)
				answer, err := kv.Txn(callCtx, &pb.TxnRequest{Success: ops})
				callCancel()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("txn %d of pass %d: %s: %w", batch%batchesPerPass, batch/batchesPerPass+1,
						statusName(err), err)
					cancel()
				} else if err == nil {
					txns++
					if answer.Header != nil && answer.Header.Revision > revision {
						revision = answer.Header.Revision
					}
				}
				mu.Unlock()
			}
		}(kvs[worker%len(kvs)])
	}
	// Pass by pass, so every key has been written r times before any is written r+1 times.
	for batch := 0; batch < batchesPerPass*o.revisions && ctx.Err() == nil; batch++ {
		select {
		case batches <- batch:
		case <-ctx.Done():
		}
	}
	close(batches)
	workers.Wait()
	if firstErr != nil {
		return fillResult{}, firstErr
	}
	return fillResult{Puts: o.keyspace * o.revisions, Txns: txns, Seconds: time.Since(started).Seconds(),
		Revision: revision}, nil
}

// fillMain is `loadgen fill ...`: it prints one fillResult, or {"error": ...} and exits 1.
func fillMain(args []string) {
	o, err := parseFillOptions(args)
	if err != nil {
		fail(err)
	}
	result, err := fill(o)
	if err != nil {
		fail(err)
	}
	line, err := json.Marshal(result)
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(append(line, '\n'))
}
