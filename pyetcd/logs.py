"""etcd 3.4's two log formats, --log-outputs and --log-level, on Python's logging.

`--logger capnslog` (3.4's default) prints `2026-01-02 15:04:05.000000 I | etcdserver: message`,
and the raft package's lines as `raft2026/01/02 15:04:05 INFO: message`. `--logger zap` prints
one JSON object a line: `{"level":"info","ts":"…Z","caller":"…","msg":"…", fields…}`.

etcd words some events differently in the two formats (capnslog's `published {Name:…} to
cluster …` is zap's `published local member to cluster through raft` with fields), so such
lines are logged with `log_event`, which carries both; scripts wait for either wording. A few
lines etcd writes in one format only (`only="zap"` or `only="capnslog"`) are left out of the other.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

NOTICE = 25
"""capnslog's NOTICE level (`N`), between INFO and WARNING."""
logging.addLevelName(NOTICE, "NOTICE")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
          "panic": logging.CRITICAL, "fatal": logging.CRITICAL}
CAPNSLOG_LETTERS = {logging.DEBUG: "D", logging.INFO: "I", NOTICE: "N", logging.WARNING: "W", logging.ERROR: "E",
                    logging.CRITICAL: "C"}
ZAP_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", NOTICE: "info", logging.WARNING: "warn",
              logging.ERROR: "error", logging.CRITICAL: "fatal"}
RAFT_LEVELS = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", NOTICE: "INFO", logging.WARNING: "WARN",
               logging.ERROR: "ERROR", logging.CRITICAL: "PANIC"}

PACKAGES = {
    "pyetcd": "etcdmain", "pyetcd.flags": "etcdmain", "pyetcd.server": "etcdserver",
    "pyetcd.membership": "etcdserver/membership", "pyetcd.api": "etcdserver/api",
    "pyetcd.etcdhttp": "etcdserver/api/etcdhttp", "pyetcd.embed": "embed", "pyetcd.compactor": "compactor",
    "pyetcd.diskspace": "etcdserver", "pyetcd.grpcproxy": "grpcproxy", "pyetcd.tcpproxy": "proxy/tcpproxy",
    "raft": "raft", "raft.node": "raft", "raft.transport": "rafthttp",
}
"""Python logger -> the etcd package whose lines it writes."""


def package_of(logger_name: str) -> str:
    """The etcd package a logger writes as: its own entry above, else the last part of its name
    (`pyetcd.pkg/osutil` writes as `pkg/osutil`)."""
    return PACKAGES.get(logger_name, logger_name.rsplit(".", 1)[-1])


def log_event(logger: logging.Logger, level: int, capnslog: str, *args: object, zap: str = "", only: str = "",
              **fields: object) -> None:
    """Log one event in etcd's words for both formats: `capnslog % args`, or zap's `zap` message
    with `fields` (names as etcd's zap lines spell them, e.g. local-member-id: pass local_member_id);
    `only` names the one format etcd writes the line in, if it writes it in one only."""
    logger.log(level, capnslog, *args, stacklevel=2,
               extra={"zap_msg": zap, "zap_fields": {k.replace("_", "-"): v for k, v in fields.items()},
                      "only_in": only})


class CapnslogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        package = package_of(record.name)
        when = datetime.fromtimestamp(record.created)
        if package == "raft":
            line = f"raft{when.strftime('%Y/%m/%d %H:%M:%S')} {RAFT_LEVELS.get(record.levelno, 'INFO')}: " \
                   f"{record.getMessage()}"
        else:
            letter = CAPNSLOG_LETTERS.get(record.levelno, "I")
            line = f"{when.strftime('%Y-%m-%d %H:%M:%S.%f')} {letter} | {package}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class ZapFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "level": ZAP_LEVELS.get(record.levelno, "info"),
            "ts": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "caller": f"{package_of(record.name).rsplit('/', 1)[-1]}/{record.module}.py:{record.lineno}",
            "msg": getattr(record, "zap_msg", "") or record.getMessage(),
        }
        entry.update(getattr(record, "zap_fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), default=str)


class LogOutputError(Exception):
    """A --log-outputs value that cannot be opened."""


def open_outputs(outputs: Sequence[str]) -> list[IO[str]]:
    """--log-outputs: `default` and `stderr` are standard error, `stdout` standard output, else a file (appended)."""
    streams: list[IO[str]] = []
    for output in outputs or ("default",):
        if output in ("default", "stderr"):
            streams.append(sys.stderr)
        elif output == "stdout":
            streams.append(sys.stdout)
        else:
            try:
                streams.append(open(output, "a", encoding="utf-8", buffering=1))  # noqa: SIM115 - lives with the process
            except OSError as err:
                raise LogOutputError(f"open {output}: {(err.strerror or str(err)).lower()}") from None
    return streams


def setup_logging(level: str, logger: str = "capnslog", outputs: Sequence[str] = ("default",)) -> None:
    """Send every logger's records to `outputs` in `logger`'s format, from `level` up."""
    formatter: logging.Formatter = ZapFormatter() if logger == "zap" else CapnslogFormatter()
    handlers: list[logging.Handler] = []
    for stream in dict.fromkeys(open_outputs(outputs)):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(lambda record: getattr(record, "only_in", "") in ("", logger))
        handlers.append(handler)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(LEVELS.get(level, logging.INFO))
