"""The lessor's rules, driven by a fake clock: who keeps time, when leases expire, what renewals say."""

from __future__ import annotations

import asyncio

import pytest

from pyetcd import errors
from pyetcd.config import ServerConfig
from pyetcd.errors import LeaseExpiredError, NotPrimaryError
from pyetcd.lessor import MAX_LEASE_TTL, Lessor, check_lease_ttl


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def leader(clock: FakeClock) -> Lessor:
    lessor = Lessor(min_ttl=2, clock=clock)
    lessor.promote(extend=0.0)
    return lessor


def test_min_ttl_is_one_and_a_half_election_timeouts_rounded_up_to_seconds() -> None:
    assert ServerConfig(election_ms=1000, heartbeat_ms=100).min_lease_ttl == 2
    assert ServerConfig(election_ms=5000, heartbeat_ms=100).min_lease_ttl == 8
    assert ServerConfig(election_ms=500, heartbeat_ms=100).min_lease_ttl == 1


def test_grant_raises_short_ttls_to_the_minimum(leader: Lessor) -> None:
    assert leader.on_grant(1, 1) == 2
    assert leader.on_grant(2, 30) == 30
    assert leader.time_to_live(1) == (2, 2)


def test_grant_refuses_zero_id_duplicates_and_huge_ttls(leader: Lessor) -> None:
    leader.on_grant(7, 10)
    with pytest.raises(errors.EtcdError) as dup:
        leader.on_grant(7, 10)
    assert dup.value == errors.ErrGRPCLeaseExist
    with pytest.raises(errors.EtcdError) as huge:
        check_lease_ttl(MAX_LEASE_TTL + 1)
    assert huge.value == errors.ErrGRPCLeaseTTLTooLarge
    check_lease_ttl(MAX_LEASE_TTL)
    with pytest.raises(errors.EtcdError) as zero:
        leader.on_grant(0, 10)
    assert zero.value == errors.ErrGRPCLeaseNotFound
    assert leader.on_grant(9, MAX_LEASE_TTL) == MAX_LEASE_TTL


def test_lease_expires_after_its_ttl_on_the_leader(leader: Lessor, clock: FakeClock) -> None:
    leader.on_grant(1, 10)
    clock.advance(9.9)
    assert leader.expired() == []
    clock.advance(0.1)
    assert leader.expired() == [1]


def test_an_expired_lease_is_offered_again_only_after_the_retry_interval(
        leader: Lessor, clock: FakeClock) -> None:
    leader.on_grant(1, 5)
    clock.advance(5)
    assert leader.expired() == [1]
    clock.advance(1)
    assert leader.expired() == []  # its revoke is presumably on its way through Raft
    clock.advance(2)
    assert leader.expired() == [1]  # 3 s later: the revoke got lost, try again


def test_revoked_lease_is_never_offered(leader: Lessor, clock: FakeClock) -> None:
    leader.on_grant(1, 5)
    leader.on_revoke(1)
    clock.advance(60)
    assert leader.expired() == []
    assert 1 not in leader
    assert leader.time_to_live(1) == (0, -1)
    with pytest.raises(errors.EtcdError) as missing:
        leader.on_revoke(1)
    assert missing.value == errors.ErrGRPCLeaseNotFound


def test_renew_restarts_the_ttl(leader: Lessor, clock: FakeClock) -> None:
    leader.on_grant(1, 10)
    clock.advance(8)
    assert leader.renew(1) == 10
    clock.advance(8)
    assert leader.expired() == []
    assert leader.time_to_live(1) == (10, 2)
    clock.advance(2)
    assert leader.expired() == [1]


def test_time_to_live_truncates_remaining_seconds(leader: Lessor, clock: FakeClock) -> None:
    leader.on_grant(1, 10)
    clock.advance(2.5)
    assert leader.time_to_live(1) == (10, 7)


def test_renewing_an_unknown_lease_says_not_found(leader: Lessor) -> None:
    with pytest.raises(errors.EtcdError) as missing:
        leader.renew(42)
    assert missing.value == errors.ErrGRPCLeaseNotFound


def test_follower_keeps_leases_forever_and_refuses_renewals(clock: FakeClock) -> None:
    follower = Lessor(min_ttl=2, clock=clock)
    follower.on_grant(1, 5)
    clock.advance(3600)
    assert follower.expired() == []
    assert follower.lookup(1) is not None
    assert follower.time_to_live(1) == (5, 5)
    with pytest.raises(NotPrimaryError):
        follower.renew(1)


def test_promotion_extends_every_lease_by_the_election_timeout(clock: FakeClock) -> None:
    lessor = Lessor(min_ttl=2, clock=clock)
    lessor.restore([(1, 10), (2, 1)])
    assert lessor.time_to_live(2) == (2, 2)  # restored TTLs obey the minimum too
    lessor.promote(extend=1.0)
    clock.advance(10.5)
    assert lessor.expired() == [2]
    clock.advance(0.5)
    assert lessor.expired() == [1]


def test_demotion_stops_the_clock(leader: Lessor, clock: FakeClock) -> None:
    leader.on_grant(1, 5)
    leader.demote()
    clock.advance(60)
    assert leader.expired() == []
    assert not leader.is_primary
    leader.promote(extend=0.0)
    assert leader.expired() == []
    clock.advance(5)
    assert leader.expired() == [1]


def test_renewing_an_expired_lease_waits_for_its_revoke(leader: Lessor, clock: FakeClock) -> None:
    leader.on_grant(1, 5)
    clock.advance(6)
    with pytest.raises(LeaseExpiredError):
        leader.renew(1)

    async def scenario() -> BaseException | int:
        renewal = asyncio.ensure_future(leader.arenew(1))
        await asyncio.sleep(0)
        assert not renewal.done()
        leader.on_revoke(1)
        try:
            return await renewal
        except Exception as err:
            return err

    outcome = asyncio.run(scenario())
    assert outcome == errors.ErrGRPCLeaseNotFound


def test_renewing_an_expired_lease_during_demotion_asks_the_new_leader(
        leader: Lessor, clock: FakeClock) -> None:
    leader.on_grant(1, 5)
    clock.advance(6)

    async def scenario() -> None:
        renewal = asyncio.ensure_future(leader.arenew(1))
        await asyncio.sleep(0)
        leader.demote()
        with pytest.raises(NotPrimaryError):
            await renewal

    asyncio.run(scenario())


def test_promotion_spreads_leases_that_would_expire_together(clock: FakeClock) -> None:
    lessor = Lessor(min_ttl=1, clock=clock, revoke_rate=4)  # aim: at most 3 expiries a second
    lessor.restore([(lease_id, 10) for lease_id in range(1, 13)])
    lessor.promote(extend=0.0)
    expiries = sorted(lease.expiry or 0.0 for lease in lessor.leases())
    assert expiries[0] == clock.now + 10
    for first, later in zip(expiries, expiries[3:], strict=False):
        assert later - first >= 1.0 - 1e-9


def test_expired_hands_out_at_most_the_limit(leader: Lessor, clock: FakeClock) -> None:
    for lease_id in range(1, 6):
        leader.on_grant(lease_id, 5)
    clock.advance(5)
    first = leader.expired(limit=3)
    assert len(first) == 3
    assert sorted(first + leader.expired(limit=3)) == [1, 2, 3, 4, 5]


def test_leases_are_listed_soonest_expiry_first(leader: Lessor) -> None:
    leader.on_grant(1, 30)
    leader.on_grant(2, 10)
    leader.on_grant(3, 20)
    assert [lease.id for lease in leader.leases()] == [2, 3, 1]
