"""GET /health as etcd 3.4 answers it (etcdserver/api/etcdhttp/metrics.go).

Unhealthy when an alarm not named in `?exclude=` is raised, when there is no leader, or when a
quorum read does not complete within a second (etcd proposes a QGET; a ReadIndex needs the same
quorum). The body is `{"health":"true"}` or, with status 503, `{"health":"false"}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import cast

from etcdpb.etcdserverpb import rpc_pb2

log = logging.getLogger("pyetcd.etcdhttp")

QUORUM_READ_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class HealthSources:
    """What /health asks the member: its raised alarms, its leader, and a quorum read."""

    alarms: Callable[[], Iterable[tuple[int, int]]]
    leader_id: Callable[[], int]
    quorum_read: Callable[[], Awaitable[None]]


def alarm_name(alarm: int) -> str:
    """NOSPACE, CORRUPT: the names `?exclude=` takes."""
    return rpc_pb2.AlarmType.Name(cast(rpc_pb2.AlarmType.ValueType, alarm))


def alarm_text(member_id: int, alarm: int) -> str:
    """An AlarmMember as Go's proto text prints it in etcd's warning."""
    return f"memberID:{member_id} alarm:{alarm_name(alarm)} "


async def check_health(sources: HealthSources, excluded_alarms: set[str]) -> bool:
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
