"""The bbolt reader and writer: what is written reads back the same, real etcdctl opens it, and damaged
files are refused with a clear error instead of a crash."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyetcd.snapshot_status import snapshot_status
from storage.bbolt import BoltReader, Bucket, CorruptDatabase, read_database, write_database
from storage.bbolt import layout as L

PAGE = L.DEFAULT_PAGE_SIZE


def etcdctl_status(path: Path) -> dict[str, int]:
    result = subprocess.run(["etcdctl", "snapshot", "status", str(path), "-w", "json"], capture_output=True,
                            text=True, timeout=60, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    status: dict[str, int] = json.loads(result.stdout)
    return status


def sample_database() -> Bucket:
    """Inline and paged buckets, a nested bucket, an overflowing value, enough keys for branch pages."""
    root = Bucket()
    many = root.bucket(b"many")
    for i in range(3000):
        many.items[b"k%06d" % i] = b"v" * (i % 97)
    root.bucket(b"small").items[b"a"] = b"1"
    root.bucket(b"empty")
    root.bucket(b"huge").items[b"blob"] = bytes(range(256)) * 800  # 200 KiB: one page and 49 overflow
    nested = root.bucket(b"nested")
    nested.items[b"plain"] = b"x"
    nested.bucket(b"inner").items[b"deep"] = b"y"
    nested.buckets[b"inner"].sequence = 7
    return root


def test_written_database_reads_back_the_same() -> None:
    root = sample_database()
    meta, back = read_database(write_database(root))
    assert back == root
    assert (meta.page_size, meta.freelist) == (PAGE, 2)


def test_small_buckets_are_inline_and_big_ones_get_pages() -> None:
    data = write_database(sample_database())
    reader = BoltReader(data)
    _, count, root_page = reader.page(reader.meta.root)
    headers = {key: L.BUCKET_HEADER.unpack_from(value)
               for _, key, value in reader.leaf_elements(root_page, count, "root")}
    assert headers[b"small"][0] == 0 and headers[b"empty"][0] == 0  # root 0: the page is in the value
    assert headers[b"many"][0] != 0 and headers[b"nested"][0] != 0
    flags, _, _ = reader.page(headers[b"many"][0])
    assert flags == L.BRANCH_PAGE
    assert reader.overflow(headers[b"huge"][0]) == 50  # 200 KiB + headers in 51 pages


def test_real_etcdctl_opens_and_hashes_what_we_write(tmp_path: Path) -> None:
    path = tmp_path / "written.db"
    path.write_bytes(write_database(sample_database()))
    ours = snapshot_status(str(path))
    theirs = etcdctl_status(path)
    assert theirs == {"hash": ours.hash, "revision": ours.revision, "totalKey": ours.total_key,
                      "totalSize": ours.total_size}
    # bbolt counts a nested bucket as one key of its parent: 3000 + 1 + 0 + 1 + 2.
    assert theirs["totalKey"] == 3004


keys = st.binary(min_size=1, max_size=12)
# Big values are cheap to generate and still need overflow pages.
values = st.one_of(st.binary(max_size=24),
                   st.builds(lambda size, byte: bytes([byte]) * size, st.integers(900, 9000), st.integers(0, 255)))
# Many keys: leaf pages that split, and branch pages above them.
bulk_buckets = st.builds(lambda n, width: Bucket(items={b"%06d" % i: b"w" * width for i in range(n)}),
                         st.integers(0, 2000), st.integers(0, 40))
leaf_buckets = st.one_of(st.builds(Bucket, items=st.dictionaries(keys, values, max_size=12)), bulk_buckets)


def with_children(children: st.SearchStrategy[dict[bytes, Bucket]]) -> st.SearchStrategy[Bucket]:
    def build(items: dict[bytes, bytes], buckets: dict[bytes, Bucket]) -> Bucket:
        return Bucket(items={k: v for k, v in items.items() if k not in buckets}, buckets=buckets)
    return st.builds(build, st.dictionaries(keys, values, max_size=8), children)


buckets = st.recursive(leaf_buckets, lambda inner: with_children(st.dictionaries(keys, inner, max_size=3)),
                       max_leaves=5)
# etcdctl reads the top-level bucket "key" as revisions (and panics on anything else): not named so here.
roots = st.dictionaries(keys.filter(lambda name: name != b"key"), buckets, max_size=4).map(
    lambda children: Bucket(buckets=children))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roots)
def test_any_written_database_reads_back_the_same(root: Bucket) -> None:
    _, back = read_database(write_database(root))
    assert back == root


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(roots)
def test_real_etcdctl_accepts_any_written_database(tmp_path: Path, root: Bucket) -> None:
    path = tmp_path / "property.db"
    path.write_bytes(write_database(root))
    ours = snapshot_status(str(path))
    assert etcdctl_status(path) == {"hash": ours.hash, "revision": ours.revision, "totalKey": ours.total_key,
                                    "totalSize": ours.total_size}


@settings(max_examples=300, deadline=None)
@given(page=st.integers(min_value=0), offset=st.integers(min_value=0, max_value=255),
       bit=st.integers(min_value=0, max_value=7))
def test_a_flipped_bit_in_any_page_header_or_element_is_read_or_refused_never_a_crash(
        page: int, offset: int, bit: int) -> None:
    damaged = bytearray(FLIP_SOURCE)
    damaged[(page % (len(damaged) // PAGE)) * PAGE + offset] ^= 1 << bit
    try:
        _, back = read_database(bytes(damaged))
    except CorruptDatabase as e:
        assert str(e)  # it says what is wrong
    else:
        assert isinstance(back, Bucket)


FLIP_SOURCE = write_database(sample_database())


@pytest.mark.parametrize("cut", [0, 10, PAGE, 3 * PAGE, len(FLIP_SOURCE) - PAGE])
def test_truncated_files_are_refused(cut: int) -> None:
    with pytest.raises(CorruptDatabase):
        read_database(FLIP_SOURCE[:cut])


def test_one_damaged_meta_page_falls_back_to_the_other_as_bbolt_does() -> None:
    damaged = bytearray(FLIP_SOURCE)
    damaged[PAGE + L.PAGE_HEADER.size + 20] ^= 0xFF  # meta page 1 (the newer): its root field
    meta, back = read_database(bytes(damaged))
    assert meta.txid == 0
    assert back == sample_database()


def test_both_meta_pages_damaged_is_bboltes_checksum_error() -> None:
    damaged = bytearray(FLIP_SOURCE)
    for page in (0, 1):
        damaged[page * PAGE + L.PAGE_HEADER.size + 20] ^= 0xFF
    with pytest.raises(CorruptDatabase, match="^checksum error$"):
        read_database(bytes(damaged))


def test_a_page_pointing_at_itself_is_refused() -> None:
    damaged = bytearray(FLIP_SOURCE)
    reader = BoltReader(FLIP_SOURCE)
    root = reader.meta.root
    _, count, page = reader.page(root)
    elements = {key: value for _, key, value in reader.leaf_elements(page, count, "root")}
    many_root = L.BUCKET_HEADER.unpack_from(elements[b"many"])[0]
    # Point the first child of the "many" bucket's branch page back at the branch page itself.
    element = many_root * PAGE + L.PAGE_HEADER.size
    L.BRANCH_ELEMENT.pack_into(damaged, element, *L.BRANCH_ELEMENT.unpack_from(damaged, element)[:2], many_root)
    with pytest.raises(CorruptDatabase):
        read_database(bytes(damaged))


def test_a_file_without_a_stored_freelist_counts_unreachable_pages_as_free() -> None:
    data = bytearray(FLIP_SOURCE)
    extra = bytes(PAGE)  # a page nothing points at
    for page in (0, 1):
        offset = page * PAGE + L.PAGE_HEADER.size
        fields = list(L.META.unpack_from(data, offset))
        fields[6], fields[7] = L.NO_FREELIST, fields[7] + 1
        packed = L.META.pack(*fields[:-1], 0)[:L.META_CHECKSUMMED_BYTES]
        data[offset:offset + L.META.size] = packed + L.PGID.pack(L.fnv64a(packed))
    meta, back = read_database(bytes(data) + extra)
    assert meta.freelist == L.NO_FREELIST
    assert back == sample_database()
