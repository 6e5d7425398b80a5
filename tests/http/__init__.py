"""The HTTP side of a client URL, checked against real etcd."""
