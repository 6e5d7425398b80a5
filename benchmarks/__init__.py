"""Benchmarks: the Raft core alone (`raft_core_bench.py`) and pyetcd beside real etcd (`compare/`)."""
