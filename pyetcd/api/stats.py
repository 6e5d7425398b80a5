"""What the gRPC handlers count for /metrics: calls started and handled, messages and bytes.

Plain integers bumped on the request path (a dict increment each); the metrics collector reads
them only when scraped, so counting costs no lock and no label lookup per call.
"""

from __future__ import annotations

import time

import grpc

from pyetcd.counters import DurationHistogram

HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""grpc_server_handling_seconds' buckets (Prometheus' default buckets, as go-grpc-prometheus uses)."""

MethodKey = tuple[str, str, str]
"""(grpc_type, grpc_service, grpc_method), go-grpc-prometheus' labels."""

CODE_NAMES = {code: "".join(part.capitalize() for part in code.name.split("_")) for code in grpc.StatusCode}
CODE_NAMES[grpc.StatusCode.OK] = "OK"
CODE_NAMES[grpc.StatusCode.CANCELLED] = "Canceled"
"""grpc-go's names for status codes (`DeadlineExceeded`, `OK`), the grpc_code label's values."""


class GrpcStats:
    """Counters for every method of the client services, made up front so a call only increments."""

    __slots__ = ("started", "handled", "msg_received", "msg_sent", "received_bytes", "sent_bytes",
                 "handling", "extensive")

    def __init__(self, *, extensive: bool = False) -> None:
        self.started: dict[MethodKey, int] = {}
        self.handled: dict[tuple[MethodKey, str], int] = {}
        self.msg_received: dict[MethodKey, int] = {}
        self.msg_sent: dict[MethodKey, int] = {}
        self.received_bytes = 0
        self.sent_bytes = 0
        self.handling: dict[MethodKey, DurationHistogram] = {}
        self.extensive = extensive
        """Whether calls are timed too (etcd's --metrics=extensive)."""

    def add_method(self, key: MethodKey) -> None:
        self.started[key] = 0
        self.msg_received[key] = 0
        self.msg_sent[key] = 0
        for name in CODE_NAMES.values():
            self.handled[(key, name)] = 0
        if self.extensive:
            self.handling[key] = DurationHistogram(HANDLING_BUCKETS)

    def finish(self, key: MethodKey, code: grpc.StatusCode | None, started_at: float) -> None:
        """A call of `key` ended with `code` (None: OK)."""
        self.handled[(key, CODE_NAMES[code or grpc.StatusCode.OK])] += 1
        if self.extensive:
            self.handling[key].observe(time.perf_counter() - started_at)
