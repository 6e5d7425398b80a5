"""GET /health as etcd 3.4 answers it (etcdserver/api/etcdhttp/metrics.go).

Unhealthy when an alarm not named in `?exclude=` is raised, when there is no leader, or when a
quorum read does not complete within a second (etcd proposes a QGET; a ReadIndex needs the same
quorum). The body is `{"health":"true"}` or, with status 503, `{"health":"false"}`. Every answer
is counted in etcd_server_health_success / etcd_server_health_failures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from etcdpb.etcdserverpb import rpc_pb2

log = logging.getLogger("pyetcd.etcdhttp")

QUORUM_READ_TIMEOUT_S = 1.0


@dataclass(slots=True)
class HealthCounts:
    """etcd's etcd_server_health_success and etcd_server_health_failures: /health answers so far."""

    success: int = 0
    failures: int = 0

    def exposition(self) -> bytes:
        """Both counters in Prometheus' text format, named as etcd names them. Unlike most of etcd's
        counters these have no `_total` suffix, which prometheus_client would add, so they are written here."""
        lines = []
        for name, help_text, value in (
                ("etcd_server_health_failures", "The total number of failed health checks", self.failures),
                ("etcd_server_health_success", "The total number of successful health checks", self.success)):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True, slots=True)
class HealthSources:
    """What /health asks the member: its raised alarms, its leader, and a quorum read; and its counts."""

    alarms: Callable[[], Iterable[tuple[int, int]]]
    leader_id: Callable[[], int]
    quorum_read: Callable[[], Awaitable[None]]
    counts: HealthCounts = field(default_factory=HealthCounts)


def alarm_name(alarm: int) -> str:
    """NOSPACE, CORRUPT: the names `?exclude=` takes."""
    return rpc_pb2.AlarmType.Name(cast(rpc_pb2.AlarmType.ValueType, alarm))


def alarm_text(member_id: int, alarm: int) -> str:
    """An AlarmMember as Go's proto text prints it in etcd's warning."""
    return f"memberID:{member_id} alarm:{alarm_name(alarm)} "


async def check_health(sources: HealthSources, excluded_alarms: set[str]) -> bool:
    healthy = await _healthy(sources, excluded_alarms)
    if healthy:
        sources.counts.success += 1
    else:
        sources.counts.failures += 1
    return healthy


async def _healthy(sources: HealthSources, excluded_alarms: set[str]) -> bool:
    for member_id, alarm in sorted(sources.alarms()):
        if alarm_name(alarm) in excluded_alarms:
            log.debug("/health excluded alarm %s", alarm_text(member_id, alarm))
            continue
        log.warning("/health error due to %s", alarm_text(member_id, alarm))
        return False
    if sources.leader_id() == 0:
        log.warning("/health error; no leader (status code 503)")
        return False
    try:
        async with asyncio.timeout(QUORUM_READ_TIMEOUT_S):
            await sources.quorum_read()
    except Exception as err:  # noqa: BLE001 - any failure of the read makes the member unhealthy
        log.warning("/health error; QGET failed %s (status code 503)", err or type(err).__name__)
        return False
    return True
