"""ServerConfig: etcd's flags, their `ETCD_*` environment variables and `--config-file`, with etcd's defaults.

Precedence follows etcd: a config file, when given, replaces flags and environment; otherwise
flags win over environment variables, which win over defaults.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from pyetcd.auth.passwords import effective_cost
from pyetcd.auth.tokens import AuthOptionsError, new_token_provider
from pyetcd.flagvalues import (
    PARSE_ERROR,
    parse_go_bool,
    parse_go_duration,
    parse_go_int,
)
from pyetcd.ids import cluster_id as derive_cluster_id
from pyetcd.ids import member_id as derive_member_id
from pyetcd.limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS
from pyetcd.tlsconfig import CipherSuiteError, TLSInfo, grpc_cipher_list, is_secure_url, split_cipher_suites
from pyetcd.urls import host_port, split_urls, url_problem

DEFAULT_NAME = "default"
DEFAULT_INITIAL_CLUSTER = "default=http://localhost:2380"
DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024


class ConfigError(Exception):
    """A flag, variable or config file value that etcd refuses when it verifies its configuration.

    The message is etcd's where it has one. etcd reports these as "error verifying flags" and
    exits 1; the subclasses below are the other two ways etcd refuses a configuration.
    """


class FlagSyntaxError(ConfigError):
    """Go's flag package refuses the command line itself (unknown flag, unparsable value): exit 2."""


class FatalConfigError(ConfigError):
    """Flags that parse and verify, but that etcd stops on while starting (a fatal log, exit 1)."""

    def __init__(self, message: str, package: str = "etcdmain") -> None:
        super().__init__(message)
        self.package = package


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One etcd flag: its name, default (as etcd prints it) and how to parse a value."""

    name: str
    default: str
    kind: str = "str"  # str | int | uint | bool | urls | duration | choice | list
    choices: tuple[str, ...] = ()
    supported: bool = True  # flags we accept but whose non-default values we refuse
    help: str = ""


FLAGS: tuple[FlagSpec, ...] = (
    FlagSpec("name", DEFAULT_NAME, help="Human-readable name for this member."),
    FlagSpec("data-dir", "${name}.etcd", help="Path to the data directory."),
    FlagSpec("wal-dir", "", help="Path to the dedicated Raft log directory."),
    FlagSpec("snapshot-count", "100000", "uint", help="Committed entries between Raft snapshots."),
    FlagSpec("heartbeat-interval", "100", "uint", help="Time (in milliseconds) of a heartbeat interval."),
    FlagSpec("election-timeout", "1000", "uint", help="Time (in milliseconds) for an election to timeout."),
    FlagSpec("initial-election-tick-advance", "true", "bool",
             help="A lone voter campaigns after one tick instead of a whole election timeout."),
    FlagSpec("listen-peer-urls", "http://localhost:2380", "urls", help="URLs to listen on for peer traffic."),
    FlagSpec("listen-client-urls", "http://localhost:2379", "urls", help="URLs to listen on for client traffic."),
    FlagSpec("max-snapshots", "5", "uint", supported=False),
    FlagSpec("max-wals", "5", "uint", supported=False),
    FlagSpec("quota-backend-bytes", "0", "int", help="Raise alarms when backend size exceeds the given quota."),
    FlagSpec("backend-batch-interval", "", supported=False),
    FlagSpec("backend-batch-limit", "0", "int", supported=False),
    FlagSpec("max-txn-ops", str(DEFAULT_MAX_TXN_OPS), "uint",
             help="Maximum number of operations permitted in a transaction."),
    FlagSpec("max-request-bytes", str(DEFAULT_MAX_REQUEST_BYTES), "uint", help="Maximum client request size in bytes."),
    FlagSpec("max-concurrent-streams", "math.MaxUint32", supported=False),
    FlagSpec("serving-processes", "1", "uint",
             help="Processes serving the client URLs' gRPC calls beside the one that runs Raft and applies "
                  "(pyetcd's own flag; 1 serves them in the member's process; raise it on a machine with a "
                  "spare core per extra process and many concurrent clients)."),
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
    FlagSpec("discovery-fallback", "proxy", supported=False),
    FlagSpec("discovery-proxy", "", supported=False),
    FlagSpec("discovery-srv", "", supported=False),
    FlagSpec("discovery-srv-name", "", supported=False),
    FlagSpec("strict-reconfig-check", "true", "bool",
             help="Reject reconfiguration requests that would cause quorum loss."),
    FlagSpec("pre-vote", "true", "bool", help="Enable the Raft Pre-Vote algorithm (thesis §9.6)."),
    FlagSpec("auto-compaction-retention", "0", help="Auto compaction retention (hours, or revisions)."),
    FlagSpec("auto-compaction-mode", "periodic", help="periodic (retention is a duration, in hours without a unit) "
             "or revision (retention is a number of revisions)."),
    FlagSpec("enable-v2", "false", "bool", supported=False),
    FlagSpec("cert-file", "", help="Path to the client server TLS cert file."),
    FlagSpec("key-file", "", help="Path to the client server TLS key file."),
    FlagSpec("client-cert-auth", "false", "bool", help="Enable client cert authentication."),
    FlagSpec("client-crl-file", "", help="Path to the client certificate revocation list file."),
    FlagSpec("client-cert-allowed-hostname", "", help="Allowed TLS hostname for client cert authentication."),
    FlagSpec("trusted-ca-file", "", help="Path to the client server TLS trusted CA cert file."),
    FlagSpec("auto-tls", "false", "bool", help="Client TLS using generated certificates."),
    FlagSpec("peer-cert-file", "", help="Path to the peer server TLS cert file."),
    FlagSpec("peer-key-file", "", help="Path to the peer server TLS key file."),
    FlagSpec("peer-client-cert-auth", "false", "bool", help="Enable peer client cert authentication."),
    FlagSpec("peer-trusted-ca-file", "", help="Path to the peer server TLS trusted CA file."),
    FlagSpec("peer-cert-allowed-cn", "", help="Allowed CN for inter peer authentication."),
    FlagSpec("peer-cert-allowed-hostname", "", help="Allowed TLS hostname for inter peer authentication."),
    FlagSpec("peer-auto-tls", "false", "bool", help="Peer TLS using generated certificates."),
    FlagSpec("peer-crl-file", "", help="Path to the peer certificate revocation list file."),
    FlagSpec("experimental-peer-skip-client-san-verification", "false", "bool",
             help="Skip verification of SAN field in client certificate for peer connections."),
    FlagSpec("cipher-suites", "", "list", help="Comma-separated list of supported TLS cipher suites between "
             "client/server and peers (etcd's names; empty will be auto-populated)."),
    FlagSpec("cors", "*", help="Origins allowed to make cross-origin requests (comma-separated; * or empty: any)."),
    FlagSpec("host-whitelist", "*",
             help="Host headers accepted on plain-HTTP client requests (comma-separated; * or empty: any)."),
    FlagSpec("auth-token", "simple"),
    FlagSpec("bcrypt-cost", "10", "uint"),
    FlagSpec("auth-token-ttl", "300", "uint"),
    FlagSpec("enable-pprof", "false", "bool", supported=False),
    FlagSpec("metrics", "basic", "choice", ("basic", "extensive"),
             help="basic, or extensive to add grpc_server_handling_seconds."),
    FlagSpec("listen-metrics-urls", "", "urls", help="Extra URLs to serve /metrics and /health on."),
    FlagSpec("enable-raft-view", "true", "bool",
             help="Serve the read-only Raft view page /debug/raft on client and metrics URLs (pyetcd's own)."),
    FlagSpec("logger", "capnslog", help="Log format: capnslog (etcd 3.4's text lines) or zap (JSON lines)."),
    FlagSpec("log-outputs", "default", "list",
             help="Where logs go: default, stderr, stdout or file paths (comma-separated)."),
    FlagSpec("log-level", "info", "choice", ("debug", "info", "warn", "error", "panic", "fatal")),
    FlagSpec("proxy", "off", "choice", ("off", "readonly", "on"), supported=False),
    FlagSpec("experimental-initial-corrupt-check", "false", "bool", supported=False),
    FlagSpec("experimental-corrupt-check-time", "0s", "duration", supported=False),
    FlagSpec("experimental-enable-lease-checkpoint", "false", "bool", supported=False),
    FlagSpec("experimental-compaction-batch-limit", "1000", "int",
             help="Sets the maximum revisions deleted in each compaction batch."),
    FlagSpec("experimental-watch-progress-notify-interval", "10m", "duration"),
    FlagSpec("experimental-snapshot-catchup-entries", "5000", "int",
             help="Entries kept after a snapshot for slow followers to catch up from (etcd 3.5's flag)."),
    FlagSpec("experimental-warning-apply-duration", "100ms", "duration"),
    FlagSpec("force-new-cluster", "false", "bool", supported=False),
    FlagSpec("debug", "false", "bool", help="Log at debug level (the same as --log-level=debug)."),
    FlagSpec("log-package-levels", "", supported=False),
)
FLAGS_BY_NAME = {spec.name: spec for spec in FLAGS}



def min_lease_ttl(election_ms: int, heartbeat_ms: int) -> int:
    """etcd's minimum lease TTL: 1.5 election timeouts (in whole ticks), rounded up to whole seconds.

    A shorter lease could expire during a normal leader election, before clients could reach the new
    leader to keep it alive.
    """
    election_ticks = max(1, election_ms // heartbeat_ms)
    return math.ceil((3 * election_ticks) // 2 * heartbeat_ms / 1000)

@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a member needs to start, resolved from flags/env/file and validated."""

    name: str = DEFAULT_NAME
    data_dir: str = "default.etcd"
    wal_dir: str = ""
    snapshot_count: int = 100000
    snapshot_catchup_entries: int = 5000
    compaction_batch_limit: int = 1000
    """Revisions a compaction deletes per store transaction (0 or less: etcd's default, 1000)."""
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
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    serving_processes: int = 1
    """--serving-processes: 1 serves gRPC in the member's own process; N > 1 starts N serving processes."""
    strict_reconfig_check: bool = True
    pre_vote: bool = True
    auto_compaction_mode: str = "periodic"
    auto_compaction_retention: str = "0"
    auto_compaction_retention_value: float = 0.0
    """The retention as etcd reads it: revisions (revision mode) or seconds (periodic mode); 0 is off."""
    log_level: str = "info"
    listen_metrics_urls: tuple[str, ...] = ()
    watch_progress_notify_interval_s: float = 600.0
    grpc_keepalive_min_time_s: float = 5.0
    client_tls: TLSInfo = TLSInfo()
    """--cert-file, --key-file, --trusted-ca-file, --client-cert-auth, --client-crl-file, ..."""
    client_auto_tls: bool = False
    peer_tls: TLSInfo = TLSInfo()
    """--peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth, ..."""
    peer_auto_tls: bool = False
    cipher_suites: tuple[str, ...] = ()
    grpc_keepalive_interval_s: float = 7200.0
    grpc_keepalive_timeout_s: float = 20.0
    warning_apply_duration_s: float = 0.1
    metrics: str = "basic"
    logger: str = "capnslog"
    log_outputs: tuple[str, ...] = ("default",)
    initial_election_tick_advance: bool = True
    host_whitelist: tuple[str, ...] = ("*",)
    cors: tuple[str, ...] = ("*",)
    enable_raft_view: bool = True
    """/debug/raft on client and metrics URLs (pyetcd's own flag; false for locked-down deployments)."""
    auth_token: str = "simple"
    """--auth-token: `simple`, or `jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`."""
    auth_token_ttl_s: int = 300
    bcrypt_cost: int = 10
    extra: dict[str, str] = field(default_factory=dict)
    notices: tuple[tuple[int, str], ...] = ()
    """What etcd logs while reading its configuration (environment variables used or unknown, ...)."""

    @property
    def election_ticks(self) -> int:
        return max(1, self.election_ms // self.heartbeat_ms)

    @property
    def min_lease_ttl(self) -> int:
        return min_lease_ttl(self.election_ms, self.heartbeat_ms)

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir, "member")

    @property
    def raft_log_dir(self) -> str:
        return self.wal_dir or os.path.join(self.member_dir, "wal")

    @property
    def client_auto_tls_dir(self) -> str:
        return os.path.join(self.data_dir, "fixtures", "client")

    @property
    def peer_auto_tls_dir(self) -> str:
        return os.path.join(self.data_dir, "fixtures", "peer")

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


def parse_urls(value: str, flag: str) -> tuple[str, ...]:
    """A comma-separated URL list; each must be http(s)://host:port or unix(s)://path as etcd requires."""
    urls = split_urls(value)
    for url in urls:
        problem = url_problem(url)
        if problem is not None:
            raise FlagSyntaxError(f'invalid value "{value}" for flag -{flag}: {problem}')
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
            raise FatalConfigError(f"error setting up initial cluster: invalid --initial-cluster entry {item!r}")
        problem = url_problem(url)
        if problem is not None:
            raise FatalConfigError(f"error setting up initial cluster: {problem}")
        pairs.append((name, url))
    return tuple(pairs)


def parse_compaction_retention(mode: str, retention: str) -> float:
    """--auto-compaction-retention as etcd reads it: a plain number is revisions in revision mode
    and hours in periodic mode; anything else must be a Go duration (periodic). Seconds or revisions."""
    try:
        number = int(retention)
    except ValueError:
        number = -1
    if number >= 0:
        return float(number) if mode == "revision" else number * 3600.0
    try:
        return parse_go_duration(retention)
    except ValueError as err:
        raise FatalConfigError(f"error parsing CompactionRetention: {err}") from None


def _value_problem(spec: FlagSpec, value: str) -> str | None:
    """Why Go's flag package (or etcd's flag type) refuses `value` for `spec`, or None."""
    try:
        if spec.kind in ("int", "uint"):
            parse_go_int(value, unsigned=spec.kind == "uint")
        elif spec.kind == "bool":
            parse_go_bool(value)
        elif spec.kind == "duration":
            parse_go_duration(value)
        elif spec.kind == "choice" and value not in spec.choices:
            return "invalid value"
        elif spec.kind == "urls":
            return next(filter(None, (url_problem(url) for url in split_urls(value))), None)
    except ValueError:
        return PARSE_ERROR
    return None


def _check_flag_value(spec: FlagSpec, value: str) -> None:
    problem = _value_problem(spec, value)
    if problem is None:
        return
    if spec.kind == "bool":
        raise FlagSyntaxError(f'invalid boolean value "{value}" for -{spec.name}: {problem}')
    raise FlagSyntaxError(f'invalid value "{value}" for flag -{spec.name}: {problem}')


def env_name(flag: str) -> str:
    """etcd's flags.FlagToEnv: ETCD_ and the flag in upper case with underscores."""
    return "ETCD_" + flag.upper().replace("-", "_")


class _GoFlagParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            token = message[len(prefix):].split()[0]
            if not token.startswith("-"):
                raise ConfigError(f"'{token}' is not a valid flag")
            raise FlagSyntaxError(f"flag provided but not defined: -{token.lstrip('-').split('=')[0]}")
        raise FlagSyntaxError(message)


def build_flag_parser(prog: str = "pyetcd") -> argparse.ArgumentParser:
    """An argparse parser that accepts etcd's flags; values stay strings until resolve()."""
    parser = _GoFlagParser(prog=prog, add_help=False, allow_abbrev=False,
                           description="pyetcd: a Raft-based key-value server that speaks the etcd v3 API.")
    for spec in FLAGS:
        dest = spec.name.replace("-", "_")
        help_text = f"{spec.help} (default {spec.default!r})".strip()
        # Go's flag package takes -name as well as --name.
        if spec.kind == "bool":
            parser.add_argument(f"--{spec.name}", f"-{spec.name}", dest=dest, nargs="?", const="true", default=None,
                                help=help_text)
        else:
            parser.add_argument(f"--{spec.name}", f"-{spec.name}", dest=dest, default=None, help=help_text)
    parser.add_argument("--config-file", "-config-file", dest="config_file", default=None,
                        help="Path to the server configuration file (YAML, etcd's keys).")
    parser.add_argument("--version", "-version", action="store_true", help="Print the version and exit.")
    parser.add_argument("-h", "--help", "-help", dest="help", action="store_true", help="Show the help.")
    return parser


@dataclass(slots=True)
class RawValues:
    """Flag name -> value as text, where each came from, and what etcd logs about the environment."""

    values: dict[str, str] = field(default_factory=dict)
    notices: list[tuple[int, str]] = field(default_factory=list)


# Go type of each flag's field in etcd's YAML config, where it is not a string.
_YAML_GO_TYPES = {"int": "int64", "uint": "uint", "bool": "bool", "duration": "time.Duration", "list": "[]string"}
_YAML_GO_TYPE_OVERRIDES = {"snapshot-count": "uint64", "max-snapshots": "uint", "max-wals": "uint",
                           "backend-batch-limit": "int", "experimental-compaction-batch-limit": "int"}


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _yaml_value(spec: FlagSpec, value: object) -> str | None:
    """A YAML value as flag text, typed as strictly as etcd's YAML-to-JSON-to-struct decoding."""
    if value is None:
        return None  # JSON null leaves the field at its default
    go_type = _YAML_GO_TYPE_OVERRIDES.get(spec.name, _YAML_GO_TYPES.get(spec.kind, "string"))
    kind = _json_kind(value)
    expected = {"bool": "bool", "[]string": "array", "string": "string"}.get(go_type, "number")
    if kind != expected or (expected == "number" and not isinstance(value, int)):
        raise ConfigError("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal "
                          f"{kind} into Go struct field configYAML.{spec.name} of type {go_type}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if go_type == "time.Duration":
        return f"{value}ns"  # etcd's YAML durations are nanoseconds
    return str(value)


# etcd's YAML holds TLS settings in two sections (embed.securityConfig), not as top-level flag names.
SECURITY_SECTIONS = {
    "client-transport-security": {"cert-file": "cert-file", "key-file": "key-file",
                                  "client-cert-auth": "client-cert-auth", "trusted-ca-file": "trusted-ca-file",
                                  "auto-tls": "auto-tls"},
    "peer-transport-security": {"cert-file": "peer-cert-file", "key-file": "peer-key-file",
                                "client-cert-auth": "peer-client-cert-auth",
                                "trusted-ca-file": "peer-trusted-ca-file", "auto-tls": "peer-auto-tls"},
}
# The rest of etcd's TLSInfo has no YAML name of its own; etcd's decoder fills it from the Go field
# names of Config.ClientTLSInfo / Config.PeerTLSInfo, matched without regard to case.
TLS_INFO_FIELDS = {
    "clienttlsinfo": {"crlfile": "client-crl-file", "allowedhostname": "client-cert-allowed-hostname"},
    "peertlsinfo": {"crlfile": "peer-crl-file", "allowedcn": "peer-cert-allowed-cn",
                    "allowedhostname": "peer-cert-allowed-hostname"},
}
TLS_FLAGS = frozenset(flag for section in (*SECURITY_SECTIONS.values(), *TLS_INFO_FIELDS.values())
                      for flag in section.values())


def _flatten_security_sections(loaded: dict[Any, Any]) -> dict[str, object]:
    """etcd's YAML keys, with the TLS sections spread out as the flags they set.

    TLS flag names at the top level are ignored, as etcd's decoder has no such fields.
    """
    flat: dict[str, object] = {}
    for key, value in loaded.items():
        name = str(key)
        if name in TLS_FLAGS:
            continue
        section = SECURITY_SECTIONS.get(name) or TLS_INFO_FIELDS.get(name.lower())
        if section is None:
            flat[name] = value
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal "
                              f"{_json_kind(value)} into Go struct field configYAML.{name} of type "
                              f"{'embed.securityConfig' if name in SECURITY_SECTIONS else 'transport.TLSInfo'}")
        for sub_key, sub_value in value.items():
            lookup = str(sub_key) if name in SECURITY_SECTIONS else str(sub_key).lower()
            flag = section.get(lookup)
            if flag is not None:
                flat[flag] = sub_value
    return flat


def _values_from_file(path: str) -> RawValues:
    """--config-file: etcd's YAML keys; flags and environment are then ignored, as in etcd."""
    raw = RawValues()
    raw.notices.append((logging.INFO, f'Loading server configuration from "{path}". Other configuration command '
                                      "line flags and environment variables will be ignored if provided."))
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise ConfigError(f"open {path}: {(err.strerror or str(err)).lower()}") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"error converting YAML to JSON: yaml: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal "
                          f"{_json_kind(loaded)} into Go value of type embed.configYAML")
    for key, value in _flatten_security_sections(loaded).items():
        spec = FLAGS_BY_NAME.get(str(key))
        if spec is None:
            continue  # etcd ignores keys that name no field
        text_value = _yaml_value(spec, value)
        if text_value is None:
            continue
        problem = _value_problem(spec, text_value)
        if problem is not None:
            raise ConfigError(f'invalid value "{text_value}" for {key}: {problem}')
        raw.values[spec.name] = text_value
    return raw


def _values_from_command_line(args: argparse.Namespace, environ: dict[str, str],
                              refuse_shadowed_env: bool) -> RawValues:
    """Flags over ETCD_* variables (etcd's flags.SetFlagsFromEnv)."""
    raw = RawValues()
    for spec in FLAGS:
        given = getattr(args, spec.name.replace("-", "_"))
        if given is not None:
            _check_flag_value(spec, given)
            raw.values[spec.name] = given
    known = {env_name(spec.name): spec for spec in FLAGS}
    known[env_name("config-file")] = FlagSpec("config-file", "")
    for variable in sorted(environ):
        if not variable.startswith("ETCD_"):
            continue
        found = known.get(variable)
        if found is None:
            raw.notices.append((logging.WARNING,
                                f"unrecognized environment variable {variable}={environ[variable]}"))
            continue
        spec = found
        if spec.name == "config-file":
            continue
        if spec.name in raw.values:
            if refuse_shadowed_env:
                raise FatalConfigError(
                    f'conflicting environment variable "{variable}" is shadowed by corresponding command-line '
                    "flag (either unset environment variable or disable flag)", package="pkg/flags")
            continue
        value = environ[variable]
        problem = _value_problem(spec, value)
        if problem is not None:
            raise ConfigError(f'invalid value "{value}" for {variable}: {problem}')
        raw.values[spec.name] = value
        raw.notices.append((logging.INFO, f"recognized and used environment variable {variable}={value}"))
    return raw


def _raw_values(args: argparse.Namespace, environ: dict[str, str], refuse_shadowed_env: bool) -> RawValues:
    config_file = args.config_file or environ.get(env_name("config-file"))
    if config_file:
        return _values_from_file(config_file)
    return _values_from_command_line(args, environ, refuse_shadowed_env)


def resolve(args: argparse.Namespace, environ: dict[str, str] | None = None, *,
            refuse_shadowed_env: bool = False) -> ServerConfig:
    """Turn parsed flags (plus env and config file) into a validated ServerConfig.

    A variable that a flag also sets is ignored, unless `refuse_shadowed_env`: then, as etcd 3.4
    does, the conflict stops start-up.
    """
    env = dict(os.environ if environ is None else environ)
    raw = _raw_values(args, env, refuse_shadowed_env)
    for name, value in raw.values.items():
        spec = FLAGS_BY_NAME[name]
        if not spec.supported and value != spec.default:
            raise ConfigError(f"--{name} is not supported by pyetcd")

    def get(name: str) -> str:
        return raw.values.get(name, FLAGS_BY_NAME[name].default)

    def get_int(name: str) -> int:
        return parse_go_int(get(name), unsigned=FLAGS_BY_NAME[name].kind == "uint")

    name = get("name")
    initial_cluster_text = get("initial-cluster")
    # etcd: a custom --name with the default --initial-cluster means "a cluster of just me".
    if "initial-cluster" not in raw.values and name != DEFAULT_NAME:
        initial_cluster_text = ",".join(f"{name}={u}" for u in get("initial-advertise-peer-urls").split(","))
    data_dir = get("data-dir")
    if data_dir == "${name}.etcd":
        data_dir = f"{name}.etcd"
    quota = get_int("quota-backend-bytes")
    if quota <= 0:
        quota = DEFAULT_QUOTA_BYTES
    heartbeat_ms = get_int("heartbeat-interval")
    election_ms = get_int("election-timeout")
    if heartbeat_ms <= 0:
        raise ConfigError(f"--heartbeat-interval must be >0 (set to {heartbeat_ms}ms)")
    if election_ms <= 0:
        raise ConfigError(f"--election-timeout must be >0 (set to {election_ms}ms)")
    if 5 * heartbeat_ms > election_ms:
        raise ConfigError(f"--election-timeout[{election_ms}ms] should be at least as 5 times as "
                          f"--heartbeat-interval[{heartbeat_ms}ms]")
    if election_ms > 50000:
        raise ConfigError(f"--election-timeout[{election_ms}ms] is too long, and should be set less than 50000ms")
    compaction_mode = get("auto-compaction-mode")
    if compaction_mode not in ("periodic", "revision"):
        raise ConfigError(f'unknown auto-compaction-mode "{compaction_mode}"')
    if get("logger") not in ("zap", "capnslog"):
        raise ConfigError(f'unknown logger option "{get("logger")}"')
    compaction_retention = get("auto-compaction-retention")
    cipher_suites = split_cipher_suites(get("cipher-suites"))
    try:
        grpc_cipher_list(cipher_suites) if cipher_suites else None
    except CipherSuiteError as err:
        raise FatalConfigError(str(err)) from None
    client_tls = TLSInfo(cert_file=get("cert-file"), key_file=get("key-file"),
                         trusted_ca_file=get("trusted-ca-file"),
                         client_cert_auth=parse_go_bool(get("client-cert-auth")), crl_file=get("client-crl-file"),
                         allowed_hostname=get("client-cert-allowed-hostname"))
    peer_tls = TLSInfo(cert_file=get("peer-cert-file"), key_file=get("peer-key-file"),
                       trusted_ca_file=get("peer-trusted-ca-file"),
                       client_cert_auth=parse_go_bool(get("peer-client-cert-auth")), crl_file=get("peer-crl-file"),
                       allowed_cn=get("peer-cert-allowed-cn"), allowed_hostname=get("peer-cert-allowed-hostname"),
                       skip_client_san_verify=parse_go_bool(get("experimental-peer-skip-client-san-verification")))
    if peer_tls.allowed_cn and peer_tls.allowed_hostname:
        raise FatalConfigError(f"AllowedCN and AllowedHostname are mutually exclusive "
                               f'(cn="{peer_tls.allowed_cn}", hostname="{peer_tls.allowed_hostname}")')
    config = ServerConfig(
        name=name,
        data_dir=data_dir,
        wal_dir=get("wal-dir"),
        snapshot_count=get_int("snapshot-count"),
        snapshot_catchup_entries=get_int("experimental-snapshot-catchup-entries"),
        compaction_batch_limit=get_int("experimental-compaction-batch-limit"),
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
        max_txn_ops=get_int("max-txn-ops"),
        max_request_bytes=get_int("max-request-bytes"),
        serving_processes=serving_processes(get_int("serving-processes")),
        strict_reconfig_check=parse_go_bool(get("strict-reconfig-check")),
        pre_vote=parse_go_bool(get("pre-vote")),
        auto_compaction_mode=compaction_mode,
        auto_compaction_retention=compaction_retention,
        auto_compaction_retention_value=parse_compaction_retention(compaction_mode, compaction_retention),
        log_level="debug" if parse_go_bool(get("debug")) else get("log-level"),
        listen_metrics_urls=parse_urls(get("listen-metrics-urls"), "listen-metrics-urls"),
        watch_progress_notify_interval_s=parse_go_duration(get("experimental-watch-progress-notify-interval")),
        grpc_keepalive_min_time_s=parse_go_duration(get("grpc-keepalive-min-time")),
        client_tls=client_tls,
        client_auto_tls=parse_go_bool(get("auto-tls")),
        peer_tls=peer_tls,
        peer_auto_tls=parse_go_bool(get("peer-auto-tls")),
        cipher_suites=cipher_suites,
        grpc_keepalive_interval_s=parse_go_duration(get("grpc-keepalive-interval")),
        grpc_keepalive_timeout_s=parse_go_duration(get("grpc-keepalive-timeout")),
        warning_apply_duration_s=parse_go_duration(get("experimental-warning-apply-duration")),
        metrics=get("metrics"),
        logger=get("logger"),
        log_outputs=tuple(o.strip() for o in get("log-outputs").split(",") if o.strip()) or ("default",),
        initial_election_tick_advance=parse_go_bool(get("initial-election-tick-advance")),
        host_whitelist=tuple(sorted({h.strip() for h in get("host-whitelist").split(",") if h.strip()})),
        cors=tuple(sorted({o.strip() for o in get("cors").split(",") if o.strip()})),
        enable_raft_view=parse_go_bool(get("enable-raft-view")),
        auth_token=get("auth-token"),
        auth_token_ttl_s=get_int("auth-token-ttl"),
        bcrypt_cost=effective_cost(get_int("bcrypt-cost")),
        notices=tuple(raw.notices),
    )
    validate_cluster_flags(config)
    validate_tls_flags(config)
    if config.serving_processes > 1 and config.client_tls.client_cert_auth:
        # Auth reads a certificate's Common Name from the call, which the core does not see behind them.
        raise ConfigError("--serving-processes above 1 cannot be combined with --client-cert-auth")
    try:
        new_token_provider(config.auth_token, config.auth_token_ttl_s)
    except AuthOptionsError as err:
        raise FatalConfigError(str(err)) from None
    return config


MAX_SERVING_PROCESSES = 64


def serving_processes(count: int) -> int:
    """--serving-processes, refused outside 1..MAX_SERVING_PROCESSES as etcd refuses a bad count."""
    if not 1 <= count <= MAX_SERVING_PROCESSES:
        raise ConfigError(f"--serving-processes must be between 1 and {MAX_SERVING_PROCESSES} (set to {count})")
    return count


def validate_tls_flags(config: ServerConfig) -> None:
    """etcd's start-up refusals of TLS listen URLs that have no certificate to serve them with."""
    if config.client_tls.empty and not config.client_auto_tls:
        for url in config.listen_client_urls:
            if is_secure_url(url):
                raise FatalConfigError(f"TLS key/cert (--cert-file, --key-file) must be provided for client url "
                                       f"{url} with HTTPS scheme")
    if config.peer_tls.empty and not config.peer_auto_tls:
        for url in config.listen_peer_urls:
            if is_secure_url(url):
                raise FatalConfigError(f"cannot listen on TLS for {host_port(url)}: "
                                       "KeyFile and CertFile are not presented")


def validate_cluster_flags(config: ServerConfig) -> None:
    """etcd's start-up checks on --name, --initial-cluster and --initial-advertise-peer-urls."""
    peers = config.initial_peer_urls()
    if config.name not in peers:
        raise FatalConfigError(f'couldn\'t find local name "{config.name}" in the initial cluster configuration')
    mine = sorted(peers[config.name])
    advertised = sorted(config.initial_advertise_peer_urls)
    if mine != advertised:
        raise FatalConfigError(
            f"--initial-cluster has {config.name}={','.join(mine)} but missing from "
            f"--initial-advertise-peer-urls={','.join(config.initial_advertise_peer_urls)} "
            f'(resolved urls: "{",".join(advertised)}" != "{",".join(mine)}")')
    seen: dict[str, str] = {}
    for name, urls in peers.items():
        for url in urls:
            if url in seen and seen[url] != name:
                raise FatalConfigError(f"--initial-cluster has duplicate url {url}")
            seen[url] = name


def parse_server_args(argv: Sequence[str], environ: dict[str, str] | None = None,
                      on_version: Callable[[], None] | None = None, *,
                      on_help: Callable[[], None] | None = None,
                      refuse_shadowed_env: bool = False) -> ServerConfig | None:
    """Parse argv; returns None when --help or --version was handled (by `on_help` / `on_version`).

    The help text is the caller's to print: pyetcd.help reads this module's flag table.
    """
    args = build_flag_parser().parse_args(list(argv))
    if args.help:
        if on_help is not None:
            on_help()
        return None
    if args.version:
        if on_version is not None:
            on_version()
        return None
    return resolve(args, environ, refuse_shadowed_env=refuse_shadowed_env)


def configured_member_id(config: ServerConfig) -> int:
    """This member's ID as etcd derives it from its advertised peer URLs and the cluster token."""
    return derive_member_id(list(config.initial_advertise_peer_urls), config.initial_cluster_token)
