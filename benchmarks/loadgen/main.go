// Command loadgen drives one benchmark run against etcd v3 endpoints (etcd or pyetcd) over etcd's own
// gRPC stubs: closed-loop unary clients, lease keep-alive streams, or watchers fed by a paced writer.
//
// It is the load generator of `make bench` (benchmarks/compare/goloadgen.py starts one per run) and
// speaks a three-step protocol with it:
//
//  1. it opens its connections (and leases or watches), then prints {"ready":true} on stdout, or
//     {"error":"..."} and exits 1;
//  2. it reads "window START END" (CLOCK_MONOTONIC seconds, the clock Python's time.monotonic reads)
//     from stdin, starts its clients at once (the warm-up) and stops them at END;
//  3. it writes the latencies of the operations completed inside [START, END) to -latencies as
//     little-endian float64 seconds, and prints {"ops":N,"errors":{...},"cpu_seconds":S} on stdout,
//     where errors counts failed RPCs by gRPC status over the whole run and cpu_seconds is this
//     process's own CPU (all threads) inside the window.
//
// Nothing is retried: a failed request is counted and its client pauses briefly before the next.
//
// `loadgen fill -endpoints=... -keyspace=N -revisions=R` writes a store before a benchmark instead: every
// key of the keyspace R times, in txns of up to 128 puts with several in flight (fill.go).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// options are the command line: one run's load, as the harness's LoadSpec describes it.
type options struct {
	workload       string
	endpoints      []string
	clients        int
	firstClient    int
	clientsPerConn int
	valueSize      int
	keyspace       int
	seed           int64
	writerRate     float64
	timeout        time.Duration
	latenciesPath  string
	procs          int
}

func parseOptions(args []string) (options, error) {
	var o options
	var endpoints string
	var timeoutS float64
	flags := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	flags.StringVar(&o.workload, "workload", "put", "one of: "+strings.Join(workloadNames(), ", "))
	flags.StringVar(&endpoints, "endpoints", "", "comma-separated host:port of every member")
	flags.IntVar(&o.clients, "clients", 1, "closed-loop clients (watchers, for the watch workload)")
	flags.IntVar(&o.firstClient, "first-client", 0, "number of the first client; client n talks to endpoint n mod len(endpoints)")
	flags.IntVar(&o.clientsPerConn, "clients-per-conn", 16, "clients sharing one connection to an endpoint")
	flags.IntVar(&o.valueSize, "value-size", 256, "bytes per value")
	flags.IntVar(&o.keyspace, "keyspace", 100000, "keys are drawn uniformly from this many")
	flags.Int64Var(&o.seed, "seed", 1, "seed of every client's key sequence")
	flags.Float64Var(&o.writerRate, "writer-rate", 100, "watch: puts per second under the watched prefix")
	flags.Float64Var(&timeoutS, "timeout", 10, "seconds before a request counts as DEADLINE_EXCEEDED")
	flags.StringVar(&o.latenciesPath, "latencies", "", "file to write the window's latencies to")
	flags.IntVar(&o.procs, "procs", 0, "cores' worth of threads to run Go code on (GOMAXPROCS); 0: every core")
	version := flags.Bool("version", false, "print the Go version this was built with and exit")
	if err := flags.Parse(args); err != nil {
		return o, err
	}
	if *version {
		fmt.Println(runtime.Version())
		os.Exit(0)
	}
	o.timeout = time.Duration(timeoutS * float64(time.Second))
	o.endpoints = splitEndpoints(endpoints)
	switch {
	case len(o.endpoints) == 0:
		return o, fmt.Errorf("-endpoints is required")
	case o.clients < 0 || o.clientsPerConn < 1 || o.keyspace < 1 || o.valueSize < 0:
		return o, fmt.Errorf("-clients, -clients-per-conn, -keyspace and -value-size must be positive")
	case o.latenciesPath == "":
		return o, fmt.Errorf("-latencies is required")
	case o.timeout <= 0:
		return o, fmt.Errorf("-timeout must be positive")
	case o.procs < 0:
		return o, fmt.Errorf("-procs must be 0 (every core) or more")
	}
	if _, known := workloads[o.workload]; !known {
		return o, fmt.Errorf("unknown workload %q (one of: %s)", o.workload, strings.Join(workloadNames(), ", "))
	}
	return o, nil
}

func splitEndpoints(list string) []string {
	var endpoints []string
	for _, endpoint := range strings.Split(list, ",") {
		if endpoint = strings.TrimSpace(endpoint); endpoint != "" {
			endpoints = append(endpoints, endpoint)
		}
	}
	return endpoints
}

// result is the last line this process prints.
type result struct {
	Ops        int            `json:"ops"`
	Errors     map[string]int `json:"errors"`
	CPUSeconds float64        `json:"cpu_seconds"`
}

func say(value interface{}) {
	line, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(line, '\n'))
}

func fail(err error) {
	say(map[string]string{"error": err.Error()})
	os.Exit(1)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "fill" {
		fillMain(os.Args[2:])
		return
	}
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		fail(err)
	}
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}
	current, err := setUp(o)
	if err != nil {
		fail(err)
	}
	say(map[string]bool{"ready": true})

	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil || strings.TrimSpace(line) == "abort" {
		current.close() // the harness gave up on this run (another part of it failed)
		return
	}
	window, err := parseWindow(line)
	if err != nil {
		current.close()
		fail(err)
	}
	latencies, errors, cpu := current.drive(window)
	current.close()
	if err := writeLatencies(o.latenciesPath, latencies); err != nil {
		fail(err)
	}
	say(result{Ops: len(latencies), Errors: errors, CPUSeconds: cpu})
}
