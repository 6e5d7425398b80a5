"""The kernel joins two TCP sockets: an eBPF sockmap redirect, set up with raw bpf(2) calls.

A gRPC connection on the client port and the front's TCP connection to grpc-core are joined so that
every segment arriving on one is queued, inside the kernel, for sending on the other: no copy to
user space, no wake-up of the front process per chunk. It takes three kernel objects, made here with
the bpf(2) system call through ctypes (no compiled code ships with pyetcd):

- `peers`, a SOCKHASH from a socket's cookie (SO_COOKIE) to the other socket of its pair: where the
  program sends what arrives;
- `joined`, a SOCKHASH whose sockets run the program (attached to it as BPF_SK_SKB_VERDICT);
- the program, BPF_PROG_TYPE_SK_SKB, ten hand-assembled instructions:
  `return bpf_sk_redirect_hash(skb, peers, &cookie_of(skb's socket), 0)`, that is, queue the skb
  for the egress of the peer (SK_PASS) or drop it if the peer is gone (SK_DROP).

A pair enters `peers` both ways before either socket enters `joined`, so no byte ever meets the
program without a peer to go to. Bytes that arrived before a socket entered `joined` wait in its
receive queue until the next arrival; setting SO_RCVLOWAT runs the socket's data-ready hook at
once, which hands them to the program ahead of anything later, in order.

A redirect carries bytes, not FIN or RST: `SockmapRelays` watches both sockets for end of stream and
errors and passes them on itself (see `JoinedPair`). A FIN does go through the verdict as an empty
skb, and the kernel's backlog, finding nothing to send, marks the socket it was meant for with
EPIPE (and sends nothing more there): that EPIPE says the bytes before the FIN were all moved, not
that the connection broke.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import platform
import select
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
"""bpf(2)'s system call number; None on other machines, where the kernel join is unavailable."""
BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_PROG_LOAD, BPF_PROG_ATTACH = 0, 2, 3, 5, 8
BPF_MAP_TYPE_SOCKHASH = 18
BPF_PROG_TYPE_SK_SKB = 14
BPF_SK_SKB_VERDICT = 38
BPF_ANY = 0
BPF_FUNC_get_socket_cookie = 46
BPF_FUNC_sk_redirect_hash = 72
BPF_PSEUDO_MAP_FD = 1
SO_COOKIE = 57
MAX_JOINED = 65536
"""Sockets each map can hold: two per joined connection."""
LICENSE = b"GPL"
"""bpf_sk_redirect_hash is offered to programs of any licence; GPL is what the kernel's own samples say."""


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction: opcode, dst and src registers (4 bits each), 16-bit offset, 32-bit immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def verdict_program(peers_fd: int) -> bytes:
    """The SK_SKB verdict program: redirect the skb to the egress of the socket `peers` maps its
    own socket's cookie to."""
    return b"".join([
        _insn(0xBF, dst=6, src=1),                          # r6 = r1 (the skb)
        _insn(0x85, imm=BPF_FUNC_get_socket_cookie),        # r0 = bpf_get_socket_cookie(skb)
        _insn(0x7B, dst=10, src=0, off=-8),                 # *(u64 *)(r10 - 8) = r0
        _insn(0xBF, dst=1, src=6),                          # r1 = skb
        _insn(0x18, dst=2, src=BPF_PSEUDO_MAP_FD, imm=peers_fd), _insn(0),  # r2 = &peers (ld_imm64)
        _insn(0xBF, dst=3, src=10),                         # r3 = r10
        _insn(0x07, dst=3, imm=-8),                         # r3 += -8 (the key on the stack)
        _insn(0xB7, dst=4, imm=0),                          # r4 = 0: the peer's egress
        _insn(0x85, imm=BPF_FUNC_sk_redirect_hash),         # r0 = bpf_sk_redirect_hash(...)
        _insn(0x95),                                        # return r0 (SK_PASS, or SK_DROP: no peer)
    ])


class BpfUnavailable(OSError):
    """The kernel refused a bpf(2) step (no permission, too old, or sockmap not built in)."""


class NotJoined(OSError):
    """A join failed before any byte could be redirected (a full map, no memory): the sockets are as
    they were, and the caller may relay them itself."""


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(command: int, attr: bytes) -> int:
    if SYS_BPF is None:
        raise BpfUnavailable(errno.ENOSYS, f"no bpf(2) system call number known for {platform.machine()}")
    buffer = ctypes.create_string_buffer(attr, 128)
    result = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(command), buffer, ctypes.c_uint(128))
    if result < 0:
        err = ctypes.get_errno()
        raise BpfUnavailable(err, f"bpf({command}): {os.strerror(err)}")
    return int(result)


def _sockhash(max_entries: int) -> int:
    # map_type, key_size, value_size, max_entries, map_flags
    return _bpf(BPF_MAP_CREATE, struct.pack("<IIIII", BPF_MAP_TYPE_SOCKHASH, 8, 4, max_entries, 0))


def _load_program(peers_fd: int) -> int:
    code = verdict_program(peers_fd)
    code_buf = ctypes.create_string_buffer(code, len(code))
    license_buf = ctypes.create_string_buffer(LICENSE)
    log = ctypes.create_string_buffer(4096)
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version
    attr = struct.pack("<IIQQIIQI", BPF_PROG_TYPE_SK_SKB, len(code) // 8, ctypes.addressof(code_buf),
                       ctypes.addressof(license_buf), 1, len(log), ctypes.addressof(log), 0)
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except BpfUnavailable as err:
        detail = log.value.decode(errors="replace").strip()
        raise BpfUnavailable(err.errno, f"{err.strerror}{': ' + detail if detail else ''}") from None


def _update(map_fd: int, key: int, sock_fd: int) -> None:
    key_buf = ctypes.create_string_buffer(struct.pack("<Q", key), 8)
    value_buf = ctypes.create_string_buffer(struct.pack("<I", sock_fd), 4)
    # map_fd, (pad), key, value, flags
    _bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", map_fd, 0, ctypes.addressof(key_buf),
                                          ctypes.addressof(value_buf), BPF_ANY))


def unavailable() -> str | None:
    """Why this kernel cannot join sockets (None: it can), found by building the maps and the program
    once and freeing them."""
    try:
        Sockmap.create().close()
    except OSError as err:
        return str(err)
    return None


def _delete(map_fd: int, key: int) -> None:
    key_buf = ctypes.create_string_buffer(struct.pack("<Q", key), 8)
    with contextlib.suppress(OSError):  # not there
        _bpf(BPF_MAP_DELETE_ELEM, struct.pack("<IIQ", map_fd, 0, ctypes.addressof(key_buf)))


def socket_cookie(sock: socket.socket) -> int:
    """The kernel's 64-bit id of `sock`, as the program's bpf_get_socket_cookie sees it."""
    return int(struct.unpack("<Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0])


@dataclass(frozen=True, slots=True)
class Sockmap:
    """The two maps and the attached program; closing the descriptors frees them."""

    peers_fd: int
    joined_fd: int
    program_fd: int

    @classmethod
    def create(cls, max_entries: int = MAX_JOINED) -> Sockmap:
        """Builds and attaches everything, or raises BpfUnavailable (EPERM, ENOSYS, EINVAL...)."""
        fds: list[int] = []
        try:
            fds.append(_sockhash(max_entries))
            fds.append(_sockhash(max_entries))
            fds.append(_load_program(fds[0]))
            # target_fd, attach_bpf_fd, attach_type, attach_flags
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIII", fds[1], fds[2], BPF_SK_SKB_VERDICT, 0))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return cls(*fds)

    def join(self, a: socket.socket, b: socket.socket) -> None:
        """From now on the kernel moves every byte arriving on `a` out of `b`, and the reverse.

        Both must be connected TCP sockets that user space no longer reads. Bytes already received
        are sent first. Raises NotJoined if the sockets are untouched (the caller may relay them
        itself), another OSError if they may be half joined (the caller must close them).
        """
        cookie_a, cookie_b = socket_cookie(a), socket_cookie(b)
        try:
            _update(self.peers_fd, cookie_a, b.fileno())
            _update(self.peers_fd, cookie_b, a.fileno())
        except OSError as err:
            _delete(self.peers_fd, cookie_a)  # no program runs for this map: nothing was redirected
            raise NotJoined(err.errno, f"sockmap join: {err.strerror}") from None
        _update(self.joined_fd, cookie_a, a.fileno())
        _update(self.joined_fd, cookie_b, b.fileno())
        for sock in (a, b):  # run the data-ready hook now for bytes that arrived before the join
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)

    def close(self) -> None:
        for fd in (self.program_fd, self.joined_fd, self.peers_fd):
            try:
                os.close(fd)
            except OSError as err:
                if err.errno != errno.EBADF:
                    raise


TCP_INFO_BYTES = 232
"""struct tcp_info up to tcpi_bytes_retrans, which Linux has had since 4.19."""
RETRY_S = 0.002
"""How soon to look again at a connection whose end of stream waits for bytes still being moved."""
MAX_RETRY_S = 0.1


def bytes_received(sock: socket.socket, fin: bool) -> int:
    """Data bytes the socket has received (tcpi_bytes_received counts the FIN's sequence number too)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    return int(struct.unpack_from("<Q", info, 128)[0]) - (1 if fin else 0)


def bytes_written(sock: socket.socket) -> int:
    """Data bytes queued for sending on the socket so far, sent or not: what was sent once (bytes
    sent less retransmitted) and what waits in the send queue unsent. Read under the socket's lock."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    notsent = struct.unpack_from("<I", info, 144)[0]
    sent, retransmitted = struct.unpack_from("<QQ", info, 200)
    return int(sent - retransmitted + notsent)


class JoinedPair:
    """Two joined sockets and how far each direction's end of stream got.

    The kernel moves the bytes; this moves the ends. A FIN on one socket becomes shutdown(SHUT_WR) on
    the other once every byte before it has reached the other's send queue (bytes received here ==
    bytes written there: the redirect may still hold some in the peer's backlog when the FIN is
    seen). An error (a reset) on either ends both. When both directions have ended, both close.
    """

    def __init__(self, a: socket.socket, b: socket.socket, on_end: Callable[[], None] | None = None) -> None:
        self.sockets = (a, b)
        self.on_end = on_end
        self.fds = (a.fileno(), b.fileno())
        self.eof = [False, False]
        """Whether socket i has received its FIN."""
        self.passed = [False, False]
        """Whether socket i's FIN has been passed on to the other socket."""
        self.broken = False
        """An error on either socket: both must close now."""

    @property
    def over(self) -> bool:
        return self.broken or all(self.passed)

    def advance(self) -> bool:
        """Passes on every FIN whose bytes have all been moved; True when one still waits for them."""
        waiting = False
        for index, sock in enumerate(self.sockets):
            if not self.eof[index] or self.passed[index]:
                continue
            peer = self.sockets[1 - index]
            try:
                moved = bytes_written(peer) >= bytes_received(sock, fin=True)
                if moved:
                    peer.shutdown(socket.SHUT_WR)
            except OSError:
                self.broken = True
                return False
            self.passed[index] = moved
            waiting = waiting or not moved
        return waiting


class SockmapRelays:
    """Joins gRPC connections with a Sockmap and watches their ends with one epoll (edge-triggered on
    EPOLLRDHUP; errors and hang-ups are always reported). The front's loop waits on `fileno()`, calls
    `handle_events` when it is readable, and `retry` after at most `timeout()` seconds."""

    def __init__(self, sockmap: Sockmap) -> None:
        self._sockmap = sockmap
        self._epoll = select.epoll()
        self._pairs: dict[int, tuple[JoinedPair, int]] = {}
        """Each watched descriptor: its pair and its index in the pair."""
        self._waiting: set[JoinedPair] = set()
        self._retry_s = RETRY_S

    def fileno(self) -> int:
        return self._epoll.fileno()

    def __len__(self) -> int:
        """Connections joined and not over yet."""
        return len(self._pairs) // 2

    def join(self, a: socket.socket, b: socket.socket, on_end: Callable[[], None] | None = None) -> None:
        """Joins `a` and `b` in the kernel (see Sockmap.join); they are this object's from now on,
        closed when the connection is over (then `on_end` runs), or at once if the join fails (which
        raises OSError)."""
        pair = JoinedPair(a, b, on_end)
        for index, fd in enumerate(pair.fds):
            self._pairs[fd] = (pair, index)
            self._epoll.register(fd, select.EPOLLRDHUP | select.EPOLLET)
        try:
            self._sockmap.join(a, b)
        except NotJoined:
            self._forget(pair)  # still the caller's, untouched
            raise
        except OSError:
            self._end(pair)
            raise

    def timeout(self) -> float | None:
        return self._retry_s if self._waiting else None

    def handle_events(self) -> None:
        for fd, events in self._epoll.poll(0):
            found = self._pairs.get(fd)
            if found is None:
                continue  # its pair ended earlier in this batch
            pair, index = found
            sock = pair.sockets[index]
            try:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError:
                error = errno.EBADF
            if error not in (0, errno.EPIPE):
                pair.broken = True  # a reset: the other end sees its connection end, as a relay gives it
            elif events & (select.EPOLLRDHUP | select.EPOLLHUP):
                pair.eof[index] = True
                if pair.advance():
                    self._waiting.add(pair)
            if pair.over:
                self._end(pair)

    def retry(self) -> None:
        """Looks again at the ends still waiting for their bytes to be moved, backing off while they wait."""
        waiting, self._waiting = self._waiting, set()
        for pair in waiting:
            if pair.advance():
                self._waiting.add(pair)
            elif pair.over:
                self._end(pair)
        self._retry_s = min(self._retry_s * 2, MAX_RETRY_S) if self._waiting else RETRY_S

    def close(self) -> None:
        """Ends every joined connection and frees the maps and the program."""
        for pair in {pair for pair, _ in self._pairs.values()}:
            self._end(pair)
        self._epoll.close()
        self._sockmap.close()

    def _forget(self, pair: JoinedPair) -> None:
        self._waiting.discard(pair)
        for fd in pair.fds:
            if self._pairs.get(fd, (None, 0))[0] is pair:
                del self._pairs[fd]
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)

    def _end(self, pair: JoinedPair) -> None:
        self._forget(pair)
        for sock in pair.sockets:
            sock.close()  # closing also takes it out of both maps
        if pair.on_end is not None:
            pair.on_end()
