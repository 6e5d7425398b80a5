"""Authentication and authorization: users, roles, key permissions, tokens, and the checks requests pass.

The package imports nothing itself, so that reading flags (which needs only `passwords` and
`tokens`) does not load gRPC before the TLS cipher suites are chosen.
"""
