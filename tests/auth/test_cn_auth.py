"""With --client-cert-auth, the Common Name of a client's certificate is its user when it sends no token.

The same etcdctl session, each command made with one of several client certificates (CN "root",
CN "alice", no CN), runs against a real etcd and against pyetcd started with the same TLS flags;
every command's exit code, output and error must match.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.certs import CertificateAuthority
from tests.helpers.servers import error_lines, run_etcdctl
from tests.helpers.tlsservers import ClientCredentials, start_all, stop_all, tls_cluster

Record = tuple[tuple[str, ...], int, str, list[str]]


def cn_session(binary: str, base: Path, authority: CertificateAuthority) -> list[Record]:
    member = authority.issue(f"{binary}-member", common_name="member")
    certs = {name: authority.issue(f"{binary}-{name}", common_name=name) for name in ("root", "alice")}
    certs["nobody"] = authority.issue(f"{binary}-plain")  # a certificate without a Common Name
    flags = [f"--cert-file={member.cert}", f"--key-file={member.key}", f"--trusted-ca-file={authority.cert_path}",
             "--client-cert-auth", "--bcrypt-cost=4"]
    (server,) = tls_cluster(binary, base / binary, 1, [flags], peer_scheme="http",
                            credentials=ClientCredentials(cacert=authority.cert_path, cert=certs["root"]))
    records: list[Record] = []

    def ctl(cn: str, *args: str) -> None:
        credentials = ClientCredentials(cacert=authority.cert_path, cert=certs[cn]).flags()
        result = run_etcdctl(server.endpoint, *credentials, *args)
        records.append(((cn, *args), result.returncode, result.stdout, error_lines(result.stderr)))

    try:
        start_all([server])
        root, alice, nobody = "root", "alice", "nobody"
        for args in [("user", "add", "root", "--no-password"), ("user", "grant-role", "root", "root"),
                     ("user", "add", "alice", "--no-password"), ("role", "add", "app"),
                     ("role", "grant-permission", "app", "readwrite", "a/", "--prefix"),
                     ("user", "grant-role", "alice", "app"), ("auth", "enable"),
                     ("put", "a/1", "v1"), ("put", "secret", "s")]:
            ctl(root, *args)
        ctl(alice, "get", "a/1")
        ctl(alice, "put", "a/1", "v2")
        ctl(alice, "get", "secret")
        ctl(alice, "user", "list")
        ctl(nobody, "get", "a/1")
        ctl(root, "get", "", "--from-key")
        ctl(root, "auth", "disable")
        ctl(nobody, "get", "a/1")
        return records
    finally:
        stop_all([server])


def test_a_client_certificates_common_name_is_its_user(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path / "pki")
    expected = cn_session("etcd", tmp_path, authority)
    actual = cn_session("pyetcd", tmp_path, authority)
    for want, got in zip(expected, actual, strict=True):
        assert got == want
    seen = {args: (out, errors) for args, _, out, errors in actual}
    assert seen[("alice", "get", "a/1")] == ("a/1\nv1\n", [])
    assert seen[("alice", "get", "secret")] == ("", ["Error: etcdserver: permission denied"])
    assert seen[("root", "get", "", "--from-key")][0] == "a/1\nv2\nsecret\ns\n"
