"""ServerConfig: etcd's flags, their `ETCD_*` environment variables and `--config-file`, with etcd's defaults.

Precedence follows etcd: a config file, when given, replaces flags and environment; otherwise
flags win over environment variables, which win over defaults.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from pyetcd.ids import cluster_id as derive_cluster_id
from pyetcd.ids import member_id as derive_member_id

DEFAULT_NAME = "default"
DEFAULT_INITIAL_CLUSTER = "default=http://localhost:2380"
DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024
MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024


class ConfigError(Exception):
    """A flag, variable or config file value that etcd would refuse; the message is etcd's where it has one."""


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One etcd flag: its name, default (as etcd prints it) and how to parse a value."""

    name: str
    default: str
    kind: str = "str"  # str | int | bool | urls | duration | choice
    choices: tuple[str, ...] = ()
    supported: bool = True  # flags we accept but whose non-default values we refuse
    help: str = ""


FLAGS: tuple[FlagSpec, ...] = (
    FlagSpec("name", DEFAULT_NAME, help="Human-readable name for this member."),
    FlagSpec("data-dir", "${name}.etcd", help="Path to the data directory."),
    FlagSpec("wal-dir", "", help="Path to the dedicated Raft log directory."),
    FlagSpec("snapshot-count", "100000", "int", help="Committed entries between Raft snapshots."),
    FlagSpec("heartbeat-interval", "100", "int", help="Time (in milliseconds) of a heartbeat interval."),
    FlagSpec("election-timeout", "1000", "int", help="Time (in milliseconds) for an election to timeout."),
    FlagSpec("initial-election-tick-advance", "true", "bool"),
    FlagSpec("listen-peer-urls", "http://localhost:2380", "urls", help="URLs to listen on for peer traffic."),
    FlagSpec("listen-client-urls", "http://localhost:2379", "urls", help="URLs to listen on for client traffic."),
    FlagSpec("max-snapshots", "5", "int"),
    FlagSpec("max-wals", "5", "int"),
    FlagSpec("quota-backend-bytes", "0", "int", help="Raise alarms when backend size exceeds the given quota."),
    FlagSpec("backend-batch-interval", ""),
    FlagSpec("backend-batch-limit", "0", "int"),
    FlagSpec("max-txn-ops", "128", "int", help="Maximum number of operations permitted in a transaction."),
    FlagSpec("max-request-bytes", "1572864", "int", help="Maximum client request size in bytes."),
    FlagSpec("max-concurrent-streams", "math.MaxUint32"),
    FlagSpec("grpc-keepalive-min-time", "5s", "duration"),
    FlagSpec("grpc-keepalive-interval", "2h", "duration"),
    FlagSpec("grpc-keepalive-timeout", "20s", "duration"),
    FlagSpec("initial-advertise-peer-urls", "http://localhost:2380", "urls",
             help="This member's peer URLs to advertise to the rest of the cluster."),
    FlagSpec("initial-cluster", DEFAULT_INITIAL_CLUSTER, help="Initial cluster configuration for bootstrapping."),
    FlagSpec("initial-cluster-state", "new", "choice", ("new", "existing"),
             help="Initial cluster state ('new' or 'existing')."),
    FlagSpec("initial-cluster-token", "etcd-cluster", help="Initial cluster token for the cluster during bootstrap."),
    FlagSpec("advertise-client-urls", "http://localhost:2379", "urls",
             help="This member's client URLs to advertise to the public."),
    FlagSpec("discovery", "", supported=False),
    FlagSpec("discovery-fallback", "proxy"),
    FlagSpec("discovery-proxy", "", supported=False),
    FlagSpec("discovery-srv", "", supported=False),
    FlagSpec("discovery-srv-name", "", supported=False),
    FlagSpec("strict-reconfig-check", "true", "bool",
             help="Reject reconfiguration requests that would cause quorum loss."),
    FlagSpec("pre-vote", "true", "bool", help="Enable the Raft Pre-Vote algorithm (thesis §9.6)."),
    FlagSpec("auto-compaction-retention", "0", help="Auto compaction retention (hours, or revisions)."),
    FlagSpec("auto-compaction-mode", "periodic", "choice", ("periodic", "revision")),
    FlagSpec("enable-v2", "false", "bool", supported=False),
    FlagSpec("cert-file", "", supported=False),
    FlagSpec("key-file", "", supported=False),
    FlagSpec("client-cert-auth", "false", "bool", supported=False),
    FlagSpec("client-crl-file", "", supported=False),
    FlagSpec("client-cert-allowed-hostname", "", supported=False),
    FlagSpec("trusted-ca-file", "", supported=False),
    FlagSpec("auto-tls", "false", "bool", supported=False),
    FlagSpec("peer-cert-file", "", supported=False),
    FlagSpec("peer-key-file", "", supported=False),
    FlagSpec("peer-client-cert-auth", "false", "bool", supported=False),
    FlagSpec("peer-trusted-ca-file", "", supported=False),
    FlagSpec("peer-cert-allowed-cn", "", supported=False),
    FlagSpec("peer-cert-allowed-hostname", "", supported=False),
    FlagSpec("peer-auto-tls", "false", "bool", supported=False),
    FlagSpec("peer-crl-file", "", supported=False),
    FlagSpec("cipher-suites", "", supported=False),
    FlagSpec("cors", "*"),
    FlagSpec("host-whitelist", "*"),
    FlagSpec("auth-token", "simple"),
    FlagSpec("bcrypt-cost", "10", "int"),
    FlagSpec("auth-token-ttl", "300", "int"),
    FlagSpec("enable-pprof", "false", "bool"),
    FlagSpec("metrics", "basic", "choice", ("basic", "extensive")),
    FlagSpec("listen-metrics-urls", "", "urls", help="Extra URLs to serve /metrics and /health on."),
    FlagSpec("logger", "zap", "choice", ("zap", "capnslog")),
    FlagSpec("log-outputs", "default"),
    FlagSpec("log-level", "info", "choice", ("debug", "info", "warn", "error", "panic", "fatal")),
    FlagSpec("proxy", "off", "choice", ("off", "readonly", "on")),
    FlagSpec("experimental-initial-corrupt-check", "false", "bool"),
    FlagSpec("experimental-corrupt-check-time", "0s", "duration"),
    FlagSpec("experimental-enable-lease-checkpoint", "false", "bool"),
    FlagSpec("experimental-compaction-batch-limit", "1000", "int"),
    FlagSpec("experimental-watch-progress-notify-interval", "10m", "duration"),
    FlagSpec("experimental-snapshot-catchup-entries", "5000", "int",
             help="Entries kept after a snapshot for slow followers to catch up from (etcd 3.5's flag)."),
    FlagSpec("experimental-warning-apply-duration", "100ms", "duration"),
    FlagSpec("force-new-cluster", "false", "bool", supported=False),
    FlagSpec("debug", "false", "bool"),
    FlagSpec("log-package-levels", ""),
)
FLAGS_BY_NAME = {spec.name: spec for spec in FLAGS}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a member needs to start, resolved from flags/env/file and validated."""

    name: str = DEFAULT_NAME
    data_dir: str = "default.etcd"
    wal_dir: str = ""
    snapshot_count: int = 100000
    snapshot_catchup_entries: int = 5000
    heartbeat_ms: int = 100
    election_ms: int = 1000
    listen_peer_urls: tuple[str, ...] = ("http://localhost:2380",)
    listen_client_urls: tuple[str, ...] = ("http://localhost:2379",)
    initial_advertise_peer_urls: tuple[str, ...] = ("http://localhost:2380",)
    advertise_client_urls: tuple[str, ...] = ("http://localhost:2379",)
    initial_cluster: tuple[tuple[str, str], ...] = (("default", "http://localhost:2380"),)
    initial_cluster_state: str = "new"
    initial_cluster_token: str = "etcd-cluster"
    quota_backend_bytes: int = DEFAULT_QUOTA_BYTES
    max_txn_ops: int = 128
    max_request_bytes: int = 1572864
    strict_reconfig_check: bool = True
    pre_vote: bool = True
    auto_compaction_mode: str = "periodic"
    auto_compaction_retention: str = "0"
    log_level: str = "info"
    listen_metrics_urls: tuple[str, ...] = ()
    watch_progress_notify_interval_s: float = 600.0
    grpc_keepalive_min_time_s: float = 5.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def election_ticks(self) -> int:
        return max(1, self.election_ms // self.heartbeat_ms)

    @property
    def min_lease_ttl(self) -> int:
        """etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds."""
        return math.ceil((3 * self.election_ticks) // 2 * self.heartbeat_ms / 1000)

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir, "member")

    @property
    def raft_log_dir(self) -> str:
        return self.wal_dir or os.path.join(self.member_dir, "wal")

    @property
    def store_dir(self) -> str:
        return os.path.join(self.member_dir, "snap", "db")

    def initial_peer_urls(self) -> dict[str, list[str]]:
        """--initial-cluster as name -> peer URLs (a name may appear more than once)."""
        peers: dict[str, list[str]] = {}
        for name, url in self.initial_cluster:
            peers.setdefault(name, []).append(url)
        return peers

    def initial_member_ids(self) -> dict[str, int]:
        """The IDs etcd derives for the --initial-cluster members."""
        return {name: derive_member_id(urls, self.initial_cluster_token)
                for name, urls in self.initial_peer_urls().items()}

    def initial_cluster_id(self) -> int:
        return derive_cluster_id(list(self.initial_member_ids().values()))


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise ValueError("parse error")


def _parse_duration(value: str) -> float:
    """A Go duration such as 10m, 5s, 100ms, 2h or 1h30m, in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    text = value.strip()
    if text in ("0", ""):
        return 0.0
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = next((u for u in ("ns", "us", "µs", "ms", "s", "m", "h") if text.startswith(u, i)), None)
        if unit is None or not number:
            raise ValueError("parse error")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError("parse error")
    return total


def parse_urls(value: str, flag: str) -> tuple[str, ...]:
    """A comma-separated URL list; each must be http(s)://host:port as etcd requires."""
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "unix", "unixs") or not parts.netloc:
            raise ConfigError(f'invalid value "{value}" for flag -{flag}: URL scheme must be http, https, '
                              f"unix, or unixs: {url}")
        if parts.scheme in ("http", "https") and parts.port is None:
            raise ConfigError(f'invalid value "{value}" for flag -{flag}: URL address does not have the form '
                              f'"host:port": {url}')
        if parts.scheme == "https":
            raise ConfigError(f"--{flag}: TLS is not supported by pyetcd ({url})")
    return urls


def parse_initial_cluster(value: str) -> tuple[tuple[str, str], ...]:
    """`name=url,name=url` as etcd's types.NewURLsMap parses it."""
    pairs: list[tuple[str, str]] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep:
            raise ConfigError(f"error setting up initial cluster: invalid --initial-cluster entry {item!r}")
        parse_urls(url, "initial-cluster")
        pairs.append((name, url))
    return tuple(pairs)


def _check_value(spec: FlagSpec, value: str) -> None:
    """Refuse a value the way Go's flag package does (`invalid value "x" for flag -y: parse error`)."""
    try:
        if spec.kind == "int":
            try:
                int(value)
            except ValueError:
                raise ValueError("parse error") from None
        elif spec.kind == "bool":
            _parse_bool(value)
        elif spec.kind == "duration":
            _parse_duration(value)
        elif spec.kind == "choice" and value not in spec.choices:
            raise ValueError("invalid value")
    except ValueError as err:
        raise ConfigError(f'invalid value "{value}" for flag -{spec.name}: {err}') from None


class _GoFlagParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            flag = message[len(prefix):].split()[0].lstrip("-").split("=")[0]
            raise ConfigError(f"flag provided but not defined: -{flag}")
        raise ConfigError(message)


def build_flag_parser(prog: str = "pyetcd") -> argparse.ArgumentParser:
    """An argparse parser that accepts etcd's flags; values stay strings until resolve()."""
    parser = _GoFlagParser(prog=prog, add_help=True, allow_abbrev=False,
                           description="pyetcd: a Raft-based key-value server that speaks the etcd v3 API.")
    for spec in FLAGS:
        dest = spec.name.replace("-", "_")
        help_text = f"{spec.help} (default {spec.default!r})".strip()
        if spec.kind == "bool":
            parser.add_argument(f"--{spec.name}", dest=dest, nargs="?", const="true", default=None, help=help_text)
        else:
            parser.add_argument(f"--{spec.name}", dest=dest, default=None, help=help_text)
    parser.add_argument("--config-file", dest="config_file", default=None,
                        help="Path to the server configuration file (YAML, etcd's keys).")
    parser.add_argument("--version", action="store_true", help="Print the version and exit.")
    return parser


def _raw_values(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """Flag name -> raw string value, from the config file or from flags over environment."""
    values: dict[str, str] = {}
    config_file = args.config_file or environ.get("ETCD_CONFIG_FILE")
    if config_file:
        try:
            with open(config_file, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh) or {}
        except OSError as err:
            raise ConfigError(f"error loading config file: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"error loading config file {config_file!r}: not a mapping")
        for key, value in loaded.items():
            if key not in FLAGS_BY_NAME:
                continue  # etcd ignores keys it does not map to a flag it knows
            values[key] = _yaml_scalar(value)
        return values
    for spec in FLAGS:
        env_name = "ETCD_" + spec.name.upper().replace("-", "_")
        if env_name in environ:
            values[spec.name] = environ[env_name]
    for spec in FLAGS:
        given = getattr(args, spec.name.replace("-", "_"))
        if given is not None:
            values[spec.name] = given
    return values


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def resolve(args: argparse.Namespace, environ: dict[str, str] | None = None) -> ServerConfig:
    """Turn parsed flags (plus env and config file) into a validated ServerConfig."""
    env = dict(os.environ if environ is None else environ)
    raw = _raw_values(args, env)
    for name, value in raw.items():
        spec = FLAGS_BY_NAME[name]
        _check_value(spec, value)
        if not spec.supported and value != spec.default:
            raise ConfigError(f"--{name} is not supported by pyetcd")

    def get(name: str) -> str:
        return raw.get(name, FLAGS_BY_NAME[name].default)

    name = get("name")
    initial_cluster_text = get("initial-cluster")
    # etcd: a custom --name with the default --initial-cluster means "a cluster of just me".
    if "initial-cluster" not in raw and name != DEFAULT_NAME:
        initial_cluster_text = ",".join(f"{name}={u}" for u in get("initial-advertise-peer-urls").split(","))
    data_dir = get("data-dir")
    if data_dir == "${name}.etcd":
        data_dir = f"{name}.etcd"
    quota = int(get("quota-backend-bytes"))
    if quota <= 0:
        quota = DEFAULT_QUOTA_BYTES
    heartbeat_ms = int(get("heartbeat-interval"))
    election_ms = int(get("election-timeout"))
    if heartbeat_ms <= 0:
        raise ConfigError("--heartbeat-interval must be positive")
    if 5 * heartbeat_ms > election_ms:
        raise ConfigError(f"--election-timeout[{election_ms}ms] should be at least as 5 times as "
                          f"--heartbeat-interval[{heartbeat_ms}ms]")
    if election_ms > 50000:
        raise ConfigError(f"--election-timeout[{election_ms}ms] is too long, and should be set less than 50 seconds")
    config = ServerConfig(
        name=name,
        data_dir=data_dir,
        wal_dir=get("wal-dir"),
        snapshot_count=int(get("snapshot-count")),
        snapshot_catchup_entries=int(get("experimental-snapshot-catchup-entries")),
        heartbeat_ms=heartbeat_ms,
        election_ms=election_ms,
        listen_peer_urls=parse_urls(get("listen-peer-urls"), "listen-peer-urls"),
        listen_client_urls=parse_urls(get("listen-client-urls"), "listen-client-urls"),
        initial_advertise_peer_urls=parse_urls(get("initial-advertise-peer-urls"), "initial-advertise-peer-urls"),
        advertise_client_urls=parse_urls(get("advertise-client-urls"), "advertise-client-urls"),
        initial_cluster=parse_initial_cluster(initial_cluster_text),
        initial_cluster_state=get("initial-cluster-state"),
        initial_cluster_token=get("initial-cluster-token"),
        quota_backend_bytes=quota,
        max_txn_ops=int(get("max-txn-ops")),
        max_request_bytes=int(get("max-request-bytes")),
        strict_reconfig_check=_parse_bool(get("strict-reconfig-check")),
        pre_vote=_parse_bool(get("pre-vote")),
        auto_compaction_mode=get("auto-compaction-mode"),
        auto_compaction_retention=get("auto-compaction-retention"),
        log_level=get("log-level"),
        listen_metrics_urls=parse_urls(get("listen-metrics-urls"), "listen-metrics-urls"),
        watch_progress_notify_interval_s=_parse_duration(get("experimental-watch-progress-notify-interval")),
        grpc_keepalive_min_time_s=_parse_duration(get("grpc-keepalive-min-time")),
    )
    validate_cluster_flags(config)
    return config


def validate_cluster_flags(config: ServerConfig) -> None:
    """etcd's start-up checks on --name, --initial-cluster and --initial-advertise-peer-urls."""
    peers = config.initial_peer_urls()
    if config.name not in peers:
        raise ConfigError(f'couldn\'t find local name "{config.name}" in the initial cluster configuration')
    mine = sorted(peers[config.name])
    advertised = sorted(config.initial_advertise_peer_urls)
    if mine != advertised:
        raise ConfigError(
            f"--initial-cluster has {config.name}={','.join(mine)} but missing from "
            f"--initial-advertise-peer-urls={','.join(config.initial_advertise_peer_urls)} "
            f'(resolved urls: "{",".join(advertised)}" != "{",".join(mine)}")')
    seen: dict[str, str] = {}
    for name, urls in peers.items():
        for url in urls:
            if url in seen and seen[url] != name:
                raise ConfigError(f"--initial-cluster has duplicate url {url}")
            seen[url] = name
    if config.max_request_bytes <= 0:
        raise ConfigError("--max-request-bytes must be positive")


def parse_server_args(argv: Sequence[str], environ: dict[str, str] | None = None,
                      on_version: Callable[[], None] | None = None) -> ServerConfig | None:
    """Parse argv; returns None when --version was handled."""
    args = build_flag_parser().parse_args(list(argv))
    if args.version:
        if on_version is not None:
            on_version()
        return None
    return resolve(args, environ)


def configured_member_id(config: ServerConfig) -> int:
    """This member's ID as etcd derives it from its advertised peer URLs and the cluster token."""
    return derive_member_id(list(config.initial_advertise_peer_urls), config.initial_cluster_token)
