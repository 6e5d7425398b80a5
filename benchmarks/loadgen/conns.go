package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
)

const maxMessageBytes = 64 << 20

// pool hands out client connections: client n uses endpoint n mod len(endpoints), and each endpoint
// gets a new connection (one TCP connection, like etcd's `benchmark --conns`) every perConn clients.
type pool struct {
	endpoints []string
	perConn   int
	timeout   time.Duration
	open      map[string]*grpc.ClientConn // the newest connection to each endpoint
	users     map[string]int
	all       []*grpc.ClientConn
}

func newPool(endpoints []string, perConn int, timeout time.Duration) *pool {
	return &pool{endpoints: endpoints, perConn: perConn, timeout: timeout,
		open: map[string]*grpc.ClientConn{}, users: map[string]int{}}
}

func (p *pool) forClient(number int) (*grpc.ClientConn, error) {
	endpoint := p.endpoints[number%len(p.endpoints)]
	if p.users[endpoint]%p.perConn == 0 {
		conn, err := p.dial(endpoint)
		if err != nil {
			return nil, err
		}
		p.open[endpoint] = conn
	}
	p.users[endpoint]++
	return p.open[endpoint], nil
}

// dial opens a new connection and waits until it is up, so the warm-up measures requests, not dials.
func (p *pool) dial(endpoint string) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, endpoint, grpc.WithInsecure(), grpc.WithBlock(), grpc.WithDisableRetry(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	p.all = append(p.all, conn)
	return conn, nil
}

func (p *pool) close() {
	for _, conn := range p.all {
		conn.Close()
	}
}
