"""One serving process: a grpc.aio server on private sockets that the client port relays gRPC connections
to. KV calls go to the core in batches (core_link.py); every other call is forwarded to the core's
private gRPC socket (forward.py). TLS ends here, so the certificate checks etcd makes after the
handshake run here too.

It dies with its core: the kernel kills it when the core exits (PR_SET_PDEATHSIG), and it stops when
the core closes the batch connection, so no serving process outlives the member and answers for it.

Run as `python -m pyetcd.serving SETTINGS_JSON` (the core does this; see supervisor.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from pyetcd.api.handlers import transport_receive_limit
from pyetcd.auth.credentials import token_from_metadata
from pyetcd.certchecks import server_interceptors
from pyetcd.serving import wire
from pyetcd.serving.core_link import CoreLink
from pyetcd.serving.forward import ForwardToCore
from pyetcd.serving.settings import ServingSettings
from pyetcd.tlscredentials import server_credentials

log = logging.getLogger("pyetcd.serving")

PR_SET_PDEATHSIG = 1
SERVING = "ready to serve client gRPC calls"
STOP_GRACE_S = 0.5


def die_with_parent(core_pid: int) -> None:
    """Ask the kernel to kill this process when its parent (the core) exits; exit now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != core_pid:
        os._exit(1)  # the core died before the request above took effect


def batched_kv(method: int, link: CoreLink) -> Callable[[bytes, Any], Awaitable[bytes]]:
    """A raw-bytes unary handler for one KV method: the request goes to the core in the next batch."""
    async def handle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        call = wire.Call(method, request, token_from_metadata(context.invocation_metadata()))
        status, payload = await link.call(call)
        if status:
            await context.abort(wire.STATUS_BY_NUMBER[status], payload.decode("utf-8", "replace"))
        return payload
    return handle


def serving_server(settings: ServingSettings, link: CoreLink, core: grpc.aio.Channel) -> grpc.aio.Server:
    """The grpc.aio server of one serving process: the member's options, KV in batches, the rest forwarded."""
    server = grpc.aio.server(interceptors=server_interceptors(settings.tls) or None, options=[
        ("grpc.max_receive_message_length", transport_receive_limit(settings.max_request_bytes)),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_concurrent_streams", 2**31 - 1),
        ("grpc.http2.min_ping_interval_without_data_ms", int(settings.grpc_keepalive_min_time_s * 1000)),
        ("grpc.keepalive_time_ms", int(settings.grpc_keepalive_interval_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.grpc_keepalive_timeout_s * 1000)),
        ("grpc.so_reuseport", 0),
    ])
    kv = {name: grpc.unary_unary_rpc_method_handler(batched_kv(number, link))
          for number, name in enumerate(wire.METHODS)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(wire.KV_SERVICE, kv),))
    server.add_registered_method_handlers(wire.KV_SERVICE, kv)
    server.add_generic_rpc_handlers((ForwardToCore(core),))
    server.add_insecure_port(f"unix-abstract:{settings.listen_socket}")
    if settings.listen_tls_socket:
        server.add_secure_port(f"unix-abstract:{settings.listen_tls_socket}", server_credentials(settings.tls))
    return server


async def serve(settings: ServingSettings) -> int:
    """Serve until the core goes away or asks this process to stop (SIGTERM)."""
    link = await CoreLink.connect("\0" + settings.core_batch_socket)
    core = grpc.aio.insecure_channel(settings.core_grpc_address, options=[
        ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
    server = serving_server(settings, link, core)
    await server.start()
    log.info("serving process %d (pid %d) %s", settings.index, os.getpid(), SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    stopped, lost = asyncio.create_task(stop.wait()), asyncio.create_task(link.lost.wait())
    await asyncio.wait([stopped, lost], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    lost.cancel()
    await server.stop(grace=STOP_GRACE_S if stop.is_set() else 0)
    log.info("serving process %d answered %d KV calls in %d batches", settings.index, link.calls, link.batches)
    await link.close()
    await core.close()
    return 0
