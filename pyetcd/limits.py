"""etcd's size limits and defaults, defined once (the flags, the servicers and the proxy share them)."""

DEFAULT_MAX_REQUEST_BYTES = 1572864
"""--max-request-bytes' default: 1.5 MiB."""

DEFAULT_MAX_TXN_OPS = 128
"""--max-txn-ops' default."""

GRPC_OVERHEAD_BYTES = 512 * 1024
"""etcd lets a message exceed --max-request-bytes by this much (gRPC framing and headers); a watch response
fragments only past it."""

SNAPSHOT_CHUNK_BYTES = 32 * 1024
"""etcd streams a snapshot in 32 KiB blobs."""
