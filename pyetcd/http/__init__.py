"""The HTTP side of a client URL: /health, /version, /metrics and the JSON gateway, beside gRPC."""
