"""`pyetcd --help`: the usage and flags in etcd 3.4's layout (sections, `--flag 'default'`, a line of help)."""

from __future__ import annotations

from pyetcd.config import FLAGS

USAGE = """Usage:

  pyetcd [flags]
    Start a pyetcd member.

  pyetcd --version
    Show the version of pyetcd.

  pyetcd -h | --help
    Show this help.

  pyetcd --config-file
    Path to the server configuration file (etcd's YAML keys); flags and environment variables are
    then ignored.

  pyetcd gateway start
    Run the stateless pass-through TCP gateway (round robin over --endpoints).

  pyetcd grpc-proxy start
    Run the stateless etcd v3 gRPC L7 reverse proxy.

  pyetcd snapshot restore|status
    Restore a snapshot file into a new data directory, or print its hash, revision, keys and size.

  pyetcd migrate
    Make a pyetcd data directory from a stopped etcd member's.
"""

SECTIONS = {
    "name": "Member", "initial-advertise-peer-urls": "Clustering", "cert-file": "Security", "auth-token": "Auth",
    "enable-pprof": "Profiling and Monitoring", "logger": "Logging", "proxy": "v2 Proxy (to be deprecated in v4)",
    "experimental-initial-corrupt-check": "Experimental feature", "force-new-cluster": "Unsafe feature",
    "debug": "Deprecated",
}
"""The flag each of etcd's help sections starts with."""


def help_text() -> str:
    lines = [USAGE]
    for spec in FLAGS:
        if spec.name in SECTIONS:
            lines.append(f"\n{SECTIONS[spec.name]}:")
        lines.append(f"  --{spec.name} '{spec.default}'")
        note = spec.help or "As etcd's flag of the same name."
        if not spec.supported:
            note += " (pyetcd accepts only the default.)"
        lines.append(f"    {note}")
    return "\n".join(lines) + "\n"
