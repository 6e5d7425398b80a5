"""Experiment: one member served by a Raft "core" process and K SO_REUSEPORT "front" processes.

The fronts terminate the clients' gRPC calls and hand the raw KV requests to the core in batches
over a unix socket; the core runs them through pyetcd's own KV handlers. See README.md for the
layout, how to run it, and what was measured.
"""
