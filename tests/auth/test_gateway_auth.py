"""The JSON gateway takes the token from the `Authorization` header, and /metrics shows the auth revision,
both as a real etcd does: the same calls against both give the same answers and the same revision."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.servers import ServerProcess, free_port, run_etcdctl
from tests.http.httpget import http_get


def post(server: ServerProcess, path: str, body: dict[str, str],
         token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": token} if token is not None else {})
    request = urllib.request.Request(f"{server.client_url}{path}", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def auth_revision(server: ServerProcess) -> float:
    text = http_get(f"{server.client_url}/metrics").body.decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "etcd_debugging_auth_revision"]
    return float(family.samples[0].value)


def gateway_session(binary: str, base: Path) -> list[object]:
    server = ServerProcess(binary=binary, name="gw", data_dir=base / f"{binary}.etcd", client_port=free_port(),
                           peer_port=free_port(), extra_args=("--bcrypt-cost=4",))
    try:
        server.start()
        seen: list[object] = [auth_revision(server)]
        for args in (("user", "add", "root:rootpw"), ("auth", "enable"), ("--user=root:rootpw", "put", "foo", "bar")):
            assert run_etcdctl(server.endpoint, *args).returncode == 0
        seen.append(auth_revision(server))
        status, login = post(server, "/v3/auth/authenticate", {"name": "root", "password": "rootpw"})
        token = str(login["token"])
        seen.append((status, sorted(login)))
        for token_sent in (token, None, "bogus.1"):
            status, answer = post(server, "/v3/kv/range", {"key": "Zm9v"}, token_sent)
            seen.append((status, answer.get("kvs"), answer.get("error"), answer.get("code")))
        seen.append(post(server, "/v3/auth/authenticate", {"name": "root", "password": "wrong"}))
        return seen
    finally:
        server.stop()


def test_gateway_tokens_and_the_auth_revision_metric_match_etcd(tmp_path: Path) -> None:
    expected = gateway_session("etcd", tmp_path)
    actual = gateway_session("pyetcd", tmp_path)
    assert actual == expected
    assert actual[3][2] is None and actual[4][2] == "etcdserver: user name is empty"
    assert actual[5][2] == "etcdserver: invalid auth token"
    assert actual[1] > actual[0]
