"""Member/cluster IDs and etcd's flags: the same inputs give what etcd gives."""

from __future__ import annotations

import pytest

from pyetcd.config import ConfigError, parse_server_args
from pyetcd.ids import cluster_id, format_id, member_id

TUTORIAL_CLUSTER = "infra3=http://127.0.0.1:32380,infra2=http://127.0.0.1:22380,infra1=http://127.0.0.1:12380"


def tutorial_flags(name: str, client: int, peer: int, state: str = "new") -> list[str]:
    return ["--name", name, "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}", "--initial-cluster-token", "etcd-cluster-1",
            "--initial-cluster", TUTORIAL_CLUSTER, "--initial-cluster-state", state]


def test_tutorial_members_get_the_ids_etcd_printed() -> None:
    config = parse_server_args(tutorial_flags("infra1", 2379, 12380), environ={})
    assert config is not None
    ids = {name: format_id(i) for name, i in config.initial_member_ids().items()}
    assert ids == {"infra1": "8211f1d0f64f3269", "infra2": "91bc3c398fb3c146", "infra3": "fd422379fda50e48"}
    assert format_id(config.initial_cluster_id()) == "ef37ad9dc622a7c4"


def test_default_flags_give_etcds_default_member_and_cluster() -> None:
    config = parse_server_args([], environ={})
    assert config is not None
    assert config.name == "default" and config.data_dir == "default.etcd"
    assert config.listen_client_urls == ("http://localhost:2379",)
    assert format_id(member_id(["http://localhost:2380"], "etcd-cluster")) == "8e9e05c52164694d"
    assert format_id(config.initial_cluster_id()) == "cdf818194e3a8c32"


def test_runtime_added_member_id_mixes_in_the_add_time() -> None:
    assert member_id(["http://127.0.0.1:42380"], "", 1) != member_id(["http://127.0.0.1:42380"], "", 2)
    assert cluster_id([2, 1]) == cluster_id([1, 2])


def test_environment_variables_set_flags_and_flags_win() -> None:
    config = parse_server_args([], environ={"ETCD_NAME": "envname", "ETCD_SNAPSHOT_COUNT": "7"})
    assert config is not None and config.name == "envname" and config.snapshot_count == 7
    assert config.data_dir == "envname.etcd"
    config = parse_server_args(["--name", "flagname"], environ={"ETCD_NAME": "envname"})
    assert config is not None and config.name == "flagname"


def test_config_file_uses_etcds_keys(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "etcd.yaml"
    path.write_text("name: fromfile\nheartbeat-interval: 50\nelection-timeout: 500\n"
                    "initial-cluster: fromfile=http://localhost:2380\n")
    config = parse_server_args(["--config-file", str(path)], environ={})
    assert config is not None
    assert (config.name, config.heartbeat_ms, config.election_ms) == ("fromfile", 50, 500)


@pytest.mark.parametrize(("argv", "message"), [
    (["--name", "a", "--initial-cluster", "b=http://127.0.0.1:2380"],
     'couldn\'t find local name "a" in the initial cluster configuration'),
    (["--heartbeat-interval", "abc"], 'invalid value "abc" for flag -heartbeat-interval: parse error'),
    (["--initial-cluster-state", "weird"], 'invalid value "weird" for flag -initial-cluster-state'),
    (["--bogus-flag"], "flag provided but not defined: -bogus-flag"),
    (["--election-timeout", "100"], "should be at least as 5 times as --heartbeat-interval"),
    (["--name", "a", "--initial-cluster", "a=http://127.0.0.1:2380", "--initial-advertise-peer-urls",
      "http://127.0.0.1:2390"], "--initial-cluster has a=http://127.0.0.1:2380 but missing from"),
])
def test_bad_flags_fail_with_etcds_message(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_server_args(argv, environ={})
    assert message in str(caught.value)
