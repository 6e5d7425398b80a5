"""pyetcd: a pure-Python Raft server that speaks the etcd v3 API."""

__version__ = "0.1.0"

SERVER_VERSION = "3.4.23"
"""The etcd server version whose API pyetcd speaks (clients gate features on it)."""
