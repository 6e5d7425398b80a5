"""The register linearizability checker on hand-written and generated histories."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.chaos.history import load_operations
from tests.chaos.linearizability import (
    CAS,
    DELETE,
    GET,
    PUT,
    Operation,
    Verdict,
    check_history,
    check_register,
)


def op(f: str, call: float, ret: float | None, *, value: str | None = None, expected: str | None = None,
       result: str | bool | None = None, key: str = "k", process: int = 0, index: int = 0) -> Operation:
    return Operation(key=key, f=f, call=call, ret=ret, value=value, expected=expected, result=result,
                     process=process, index=index)


def verdict(*ops: Operation) -> Verdict:
    return check_register("k", ops).verdict


def test_sequential_writes_and_reads_are_linearizable() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(GET, 2, 3, result="a"),
                   op(PUT, 4, 5, value="b"), op(GET, 6, 7, result="b")) is Verdict.LINEARIZABLE


def test_a_read_of_an_overwritten_value_after_the_overwrite_returned_is_a_violation() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(PUT, 2, 3, value="b"),
                   op(GET, 4, 5, result="a")) is Verdict.NOT_LINEARIZABLE


def test_a_read_concurrent_with_a_write_may_see_the_old_or_the_new_value() -> None:
    for seen in ("a", "b"):
        assert verdict(op(PUT, 0, 1, value="a"), op(PUT, 2, 6, value="b"),
                       op(GET, 3, 4, result=seen)) is Verdict.LINEARIZABLE


def test_a_read_cannot_see_a_write_invoked_after_it_returned() -> None:
    assert verdict(op(GET, 0, 1, result="a"), op(PUT, 2, 3, value="a")) is Verdict.NOT_LINEARIZABLE


def test_reads_on_both_sides_of_a_slow_write_cannot_go_back_in_time() -> None:
    # The write spans both reads, but once one read saw the new value a later read cannot see the old.
    assert verdict(op(PUT, 0, 1, value="a"), op(PUT, 2, 10, value="b"), op(GET, 3, 4, result="b"),
                   op(GET, 5, 6, result="a")) is Verdict.NOT_LINEARIZABLE


def test_a_missing_key_reads_as_absent_until_written() -> None:
    assert verdict(op(GET, 0, 1, result=None), op(PUT, 2, 3, value="a")) is Verdict.LINEARIZABLE
    assert verdict(op(PUT, 0, 1, value="a"), op(GET, 2, 3, result=None)) is Verdict.NOT_LINEARIZABLE


def test_a_write_with_unknown_outcome_may_take_effect_long_after_its_call() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(PUT, 2, None, value="b"), op(GET, 3, 4, result="a"),
                   op(GET, 50, 51, result="b")) is Verdict.LINEARIZABLE


def test_a_write_with_unknown_outcome_may_never_take_effect() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(PUT, 2, None, value="b"),
                   op(GET, 50, 51, result="a")) is Verdict.LINEARIZABLE


def test_a_write_with_unknown_outcome_still_cannot_be_seen_before_its_call() -> None:
    assert verdict(op(GET, 0, 1, result="b"), op(PUT, 2, None, value="b")) is Verdict.NOT_LINEARIZABLE


def test_a_read_with_unknown_outcome_constrains_nothing() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(GET, 2, None, result="zzz")) is Verdict.LINEARIZABLE


def test_compare_and_set_succeeds_only_on_the_expected_value() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(CAS, 2, 3, expected="a", value="b", result=True),
                   op(GET, 4, 5, result="b")) is Verdict.LINEARIZABLE
    assert verdict(op(PUT, 0, 1, value="a"), op(CAS, 2, 3, expected="x", value="b", result=True)) \
        is Verdict.NOT_LINEARIZABLE
    assert verdict(op(PUT, 0, 1, value="a"), op(CAS, 2, 3, expected="a", value="b", result=False)) \
        is Verdict.NOT_LINEARIZABLE


def test_a_failed_compare_and_set_leaves_the_value_alone() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(CAS, 2, 3, expected="x", value="b", result=False),
                   op(GET, 4, 5, result="b")) is Verdict.NOT_LINEARIZABLE


def test_compare_and_set_on_an_absent_key_creates_it() -> None:
    assert verdict(op(CAS, 0, 1, expected=None, value="a", result=True), op(GET, 2, 3, result="a")) \
        is Verdict.LINEARIZABLE


def test_two_compare_and_sets_from_the_same_value_cannot_both_succeed() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(CAS, 2, 5, expected="a", value="b", result=True),
                   op(CAS, 3, 6, expected="a", value="c", result=True)) is Verdict.NOT_LINEARIZABLE


def test_a_compare_and_set_with_unknown_outcome_may_explain_a_later_read() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(CAS, 2, None, expected="a", value="b"),
                   op(GET, 9, 10, result="b")) is Verdict.LINEARIZABLE


def test_delete_reports_whether_the_key_existed() -> None:
    assert verdict(op(PUT, 0, 1, value="a"), op(DELETE, 2, 3, result=True), op(GET, 4, 5, result=None),
                   op(DELETE, 6, 7, result=False)) is Verdict.LINEARIZABLE
    assert verdict(op(DELETE, 0, 1, result=True)) is Verdict.NOT_LINEARIZABLE
    assert verdict(op(PUT, 0, 1, value="a"), op(DELETE, 2, 3, result=False)) is Verdict.NOT_LINEARIZABLE


def test_keys_are_checked_independently_and_only_the_bad_key_is_reported() -> None:
    history = [op(PUT, 0, 1, value="a", key="good"), op(GET, 2, 3, result="a", key="good"),
               op(PUT, 0, 1, value="a", key="bad"), op(PUT, 2, 3, value="b", key="bad"),
               op(GET, 4, 5, result="a", key="bad")]
    result = check_history(history)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert [k.key for k in result.violations] == ["bad"]


def test_a_violation_names_the_stuck_operation_its_window_and_the_possible_states() -> None:
    history = [op(PUT, 0, 1, value="a", index=0), op(PUT, 2, 3, value="b", index=1),
               op(PUT, 3.5, 9, value="c", index=2), op(GET, 4, 5, result="a", index=3, process=7)]
    result = check_register("k", history)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.stuck is not None and result.stuck.index == 3
    assert result.states_before_window == ["b"]
    assert {o.index for o in result.window} == {2, 3}
    text = result.explain()
    assert "get() -> 'a'" in text and "cannot be linearized" in text and "'b'" in text and "p7" in text


def test_the_search_gives_up_with_unknown_when_its_budget_runs_out() -> None:
    history = [op(PUT, i, 100 + i, value=str(i)) for i in range(12)] + [op(GET, 200, 201, result="nope")]
    assert check_register("k", history, max_steps=50).verdict is Verdict.UNKNOWN


def simulated_history(seed: int, processes: int, count: int, unknown_rate: float) -> list[Operation]:
    """Operations of concurrent clients on a truly atomic register: each takes effect at one
    instant inside its call..return interval, so the history is linearizable by construction."""
    rng = random.Random(seed)
    # Each operation gets an interval and an instant inside it; effects are applied in instant order.
    planned: list[tuple[float, float, float, str, int]] = []
    clock = [0.0] * processes
    for n in range(count):
        p = rng.randrange(processes)
        call = clock[p] + rng.random()
        ret = call + rng.random() * 3
        instant = rng.uniform(call, ret)
        clock[p] = ret
        planned.append((instant, call, ret, rng.choice([GET, GET, PUT, CAS, DELETE]), n))
    planned.sort()
    state: str | None = None
    history: list[Operation] = []
    for instant, call, ret, f, n in planned:
        value = f"v{n}"
        unknown = f != GET and rng.random() < unknown_rate
        if f == GET:
            history.append(op(GET, call, ret, result=state, index=n))
        elif f == PUT:
            state = value
            history.append(op(PUT, call, None if unknown else ret, value=value, index=n))
        elif f == CAS:
            expected = state if rng.random() < 0.6 else "other"
            swapped = state == expected
            if swapped:
                state = value
            history.append(op(CAS, call, None if unknown else ret, expected=expected, value=value,
                              result=swapped, index=n))
        else:
            existed = state is not None
            state = None
            history.append(op(DELETE, call, None if unknown else ret, result=existed, index=n))
        del instant
    return sorted(history, key=lambda o: o.call)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), processes=st.integers(1, 5), count=st.integers(1, 60),
       unknown_rate=st.sampled_from([0.0, 0.1, 0.3]))
def test_histories_of_an_atomic_register_are_always_linearizable(seed: int, processes: int, count: int,
                                                                 unknown_rate: float) -> None:
    history = simulated_history(seed, processes, count, unknown_rate)
    assert check_register("k", history).verdict is Verdict.LINEARIZABLE


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), processes=st.integers(1, 5), count=st.integers(2, 60))
def test_a_read_of_a_value_nobody_wrote_is_always_caught(seed: int, processes: int, count: int) -> None:
    history = simulated_history(seed, processes, count, 0.2)
    reads = [i for i, o in enumerate(history) if o.f == GET]
    if not reads:
        history.append(op(GET, 1000, 1001, result="phantom"))
    else:
        victim = history[random.Random(seed).choice(reads)]
        history[history.index(victim)] = op(GET, victim.call, victim.ret, result="phantom", index=victim.index)
    assert check_register("k", history).verdict is Verdict.NOT_LINEARIZABLE


RECORDED = Path(__file__).parent / "recorded"


def test_a_recorded_run_with_stale_follower_reads_injected_is_caught() -> None:
    # One key's history from `python -m tests.chaos --inject stale-reads`: gets were served
    # serializably by whichever member, here by m1 while a partition kept it behind.
    result = check_history(load_operations(RECORDED / "stale_reads.jsonl"))
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    [violation] = result.violations
    assert violation.stuck is not None and violation.stuck.f == GET
    assert violation.stuck.result not in violation.states_before_window


def test_a_recorded_run_of_the_same_workload_without_the_bug_is_linearizable() -> None:
    result = check_history(load_operations(RECORDED / "healthy.jsonl"))
    assert result.verdict is Verdict.LINEARIZABLE
    assert any(op.ret is None for op in load_operations(RECORDED / "healthy.jsonl"))  # it had unknown outcomes
