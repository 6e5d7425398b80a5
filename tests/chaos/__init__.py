"""Jepsen-style fault testing of a real pyetcd cluster.

    python -m tests.chaos --duration 600             # `make chaos DURATION=600`
    python -m tests.chaos --inject stale-reads       # a client bug the checks must catch
    python -m tests.chaos --check run/history.jsonl  # re-check a recorded history

cluster.py starts members as processes behind proxy.py, the fault-injecting peer proxy;
clients.py loads them (registers, watchers, a leader poller) while nemesis.py kills,
pauses, partitions and reconfigures; history.py records it all; linearizability.py and
checks.py judge it; harness.py runs the whole thing and reports.
"""
