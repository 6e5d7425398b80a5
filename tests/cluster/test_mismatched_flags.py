"""A member started with another cluster's token is kept out, as etcd keeps it out."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers.servers import ServerProcess, free_port


def test_member_with_a_different_cluster_token_is_refused_by_its_peers(tmp_path: Path) -> None:
    ports = [(free_port(), free_port()) for _ in range(3)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
    members = [ServerProcess(binary="pyetcd", name=f"m{i}", data_dir=tmp_path / f"m{i}.etcd", client_port=client,
                             peer_port=peer, initial_cluster=initial,
                             extra_args=[f"--initial-cluster-token={'right' if i < 2 else 'wrong'}"])
               for i, (client, peer) in enumerate(ports)]
    try:
        for member in members:
            member.start(wait=False)
        members[0].wait_healthy(60)
        members[1].wait_healthy(60)
        assert members[0].etcdctl("put", "/two-of-three", "ok").stdout.strip() == "OK"
        time.sleep(3)  # give the odd member time to try; it must still be outside
        outsider = members[2]
        assert outsider.etcdctl("endpoint", "health", "--command-timeout=2s").returncode != 0
        assert "cluster ID mismatch" in outsider.log_tail(200)
        assert "cluster ID mismatch" in members[0].log_tail(200)
    finally:
        for member in members:
            member.stop()
