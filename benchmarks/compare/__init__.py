"""pyetcd and real etcd side by side: same topology, same load, A/B/A/B runs, ratios per point.

`python -m benchmarks.compare --mode quick|full|tiny` (or `make bench [MODE=full]`) writes
`benchmarks/results/latest.md`, `latest.json` and PNG plots.
"""
