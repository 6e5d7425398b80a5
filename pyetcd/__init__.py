"""pyetcd: a pure-Python Raft server that speaks the etcd v3 API."""

__version__ = "0.1.0"
