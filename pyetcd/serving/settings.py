"""What a serving process is told by its core, passed as one JSON argument on its command line."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from pyetcd.tlsconfig import TLSInfo


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """Where a serving process listens, where its core is, and the client-facing limits it applies."""

    index: int
    """Which of the member's serving processes this is (1..N), for log lines."""
    core_pid: int
    core_grpc_address: str
    """The core's private gRPC address (gRPC's form), where non-KV calls are forwarded."""
    core_batch_socket: str
    """The core's abstract batch socket name (without the leading NUL)."""
    listen_socket: str
    """The abstract socket name (without the leading NUL) the client port relays plain gRPC connections to."""
    listen_tls_socket: str
    """The same for TLS connections ("" when the member has no TLS client URL)."""
    tls: TLSInfo
    max_request_bytes: int
    grpc_keepalive_min_time_s: float
    grpc_keepalive_interval_s: float
    grpc_keepalive_timeout_s: float
    log_level: str
    logger: str = "capnslog"
    log_outputs: tuple[str, ...] = ("default",)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServingSettings:
        fields = json.loads(text)
        fields["tls"] = TLSInfo(**fields["tls"])
        fields["log_outputs"] = tuple(fields["log_outputs"])
        return cls(**fields)
