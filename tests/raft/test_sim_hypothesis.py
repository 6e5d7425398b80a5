"""Hypothesis drives the simulator: any mix of faults and client operations keeps Raft safe.

A failing schedule shrinks to a short list of events, which reads like a scenario script.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raft.sim.cluster import CrashPoint
from raft.sim.driven import DrivenCluster
from raft.sim.schedule import (
    FAULT_LEVELS,
    AddLearner,
    AddVoter,
    BlockLink,
    Campaign,
    Crash,
    CrashLeader,
    Event,
    Heal,
    IsolateLeader,
    Partition,
    PromoteLearner,
    Propose,
    Read,
    RemoveFollower,
    RemoveLeader,
    Restart,
    SetFaults,
    TakeSnapshot,
    Tick,
    TransferLeader,
    run_events,
)

picks = st.integers(min_value=0, max_value=15)
seeds = st.integers(min_value=0, max_value=2**32 - 1)

time_passes = st.builds(Tick, st.integers(min_value=1, max_value=12))
clients = st.one_of(st.builds(Propose, picks), st.builds(Read, picks))
faults = st.one_of(
    st.builds(Partition, st.integers(min_value=1, max_value=(1 << 7) - 1)),
    st.builds(BlockLink, picks, picks),
    st.just(IsolateLeader()),
    st.just(Heal()),
    st.builds(SetFaults, st.integers(min_value=0, max_value=len(FAULT_LEVELS) - 1)),
    st.builds(Crash, picks, st.sampled_from(list(CrashPoint))),
    st.builds(CrashLeader, st.sampled_from(list(CrashPoint))),
    st.builds(Restart, picks),
)
admin = st.one_of(
    st.just(AddVoter()),
    st.just(AddLearner()),
    st.builds(PromoteLearner, picks),
    st.builds(RemoveFollower, picks),
    st.just(RemoveLeader()),
    st.builds(TakeSnapshot, picks, st.integers(min_value=0, max_value=2)),
    st.builds(TransferLeader, picks),
    st.builds(Campaign, picks),
)
# Time and clients dominate, as in real life; faults and admin work come now and then.
events: st.SearchStrategy[Event] = st.one_of(time_passes, time_passes, clients, clients, faults, admin)


WARM_UP = Tick(25)  # time for a first leader, so every example exercises a working cluster


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=st.lists(events, min_size=30, max_size=150), seed=seeds, nodes=st.sampled_from([3, 5]))
def test_any_mix_of_faults_and_clients_keeps_raft_safe(schedule: list[Event], seed: int, nodes: int) -> None:
    result = run_events([WARM_UP, *schedule], seed=seed, nodes=nodes)
    assert result.ok, f"{result.violation}\nschedule: {schedule}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=st.lists(st.one_of(time_passes, clients, faults), min_size=30, max_size=150),
       seed=seeds)
def test_crash_and_partition_storms_keep_raft_safe_without_liveness(schedule: list[Event], seed: int) -> None:
    result = run_events([WARM_UP, *schedule], seed=seed, check_liveness=False)
    assert result.ok, f"{result.violation}\nschedule: {schedule}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=st.lists(events, min_size=30, max_size=150), seed=seeds, nodes=st.sampled_from([3, 5]))
def test_any_mix_of_faults_and_clients_keeps_the_production_driver_safe(schedule: list[Event], seed: int,
                                                                         nodes: int) -> None:
    result = run_events([WARM_UP, *schedule], seed=seed, nodes=nodes, cluster_type=DrivenCluster)
    assert result.ok, f"{result.violation}\nschedule: {schedule}"
