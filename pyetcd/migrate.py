"""`pyetcd migrate --from-etcd-data-dir DIR`: a pyetcd data directory from a stopped etcd member's.

The member's backend, ``DIR/member/snap/db``, is an etcd backend without a trailer; it becomes a new
member's data as a restored snapshot would (same flags as `pyetcd snapshot restore`).
"""

from __future__ import annotations

import argparse
import fcntl
import os

from pyetcd.config import ConfigError
from pyetcd.restore import add_member_arguments, build_data_dir, check_member_arguments
from pyetcd.snapshot_file import contents_of_etcd_database, is_bbolt


def add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-etcd-data-dir", required=True,
                        help="The data directory of a stopped etcd member (its member/snap/db is read).")
    add_member_arguments(parser)


def etcd_backend_path(data_dir: str) -> str:
    return os.path.join(data_dir, "member", "snap", "db")


def migrate(args: argparse.Namespace) -> None:
    check_member_arguments(args)
    path = etcd_backend_path(args.from_etcd_data_dir)
    with open(path, "rb") as fh:
        try:
            # A running etcd holds bbolt's exclusive lock on its db; its file may change under us.
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{path} is locked: stop the etcd member before migrating it") from None
        data = fh.read()
    if not is_bbolt(data):
        raise ValueError(f"{path}: invalid database")
    build_data_dir(args, contents_of_etcd_database(data))
