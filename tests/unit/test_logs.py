"""A line etcd writes in one log format only stays out of the other."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyetcd.logs import log_event, setup_logging


@pytest.fixture
def restored_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.usefixtures("restored_root_logger")
@pytest.mark.parametrize("logger", ["capnslog", "zap"])
def test_one_format_lines_are_left_out_of_the_other(logger: str, tmp_path: Path) -> None:
    output = tmp_path / "log"
    setup_logging("info", logger, [str(output)])
    server = logging.getLogger("pyetcd.server")
    log_event(server, logging.INFO, "both %s", "formats", zap="both formats")
    log_event(server, logging.WARNING, "server is likely overloaded", only="capnslog")
    log_event(server, logging.INFO, "cluster version is updated", zap="cluster version is updated", only="zap",
              cluster_version="3.4")
    lines = output.read_text().splitlines()
    if logger == "zap":
        entries = [json.loads(line) for line in lines]
        assert [e["msg"] for e in entries] == ["both formats", "cluster version is updated"]
        assert entries[1]["cluster-version"] == "3.4"
    else:
        assert [line.split(" | ", 1)[1] for line in lines] == [
            "etcdserver: both formats", "etcdserver: server is likely overloaded"]
