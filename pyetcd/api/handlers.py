"""gRPC method handlers around the servicers, answering as etcd's Go server does before a servicer runs.

This is the one place where a call's outcome becomes etcd's answer: an exception a servicer raises becomes
etcd's gRPC error (errors.to_etcd_error), and a unary answer gets its response header as etcd fills it
(api/header.py); servicers only check, ask the server and return.

Four checks that etcd gets from grpc-go and from v3rpc's interceptors:

- a request that does not decode is refused with INTERNAL "grpc: error unmarshalling request: ...",
  instead of reaching Python's generic "Unexpected DecodeError" path;
- a request larger than --max-request-bytes plus gRPC's overhead allowance is refused with
  RESOURCE_EXHAUSTED "grpc: received message larger than max (N vs. M)" (the transport's own
  limit is set higher, so that this answer, in grpc-go's words, is the one clients see);
- a learner serves only Status and serializable Range; every other unary call and every stream
  is refused with "etcdserver: rpc not supported for learner" (etcd 3.4's isRPCSupportedForLearner);
- a method or service that does not exist is UNIMPLEMENTED with grpc-go's words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import errors
from pyetcd.api.header import HeaderFill, fill_header_for
from pyetcd.api.kv import explain_undecodable_txn
from pyetcd.api.server_api import EtcdServerApi
from pyetcd.api.stats import GrpcStats, MethodKey
from pyetcd.auth.credentials import REQUEST_CREDENTIALS, credentials_from_call
from pyetcd.limits import GRPC_OVERHEAD_BYTES

ERR_UNMARSHAL_PREFIX = "grpc: error unmarshalling request: "
TRANSPORT_LIMIT_FACTOR = 4
"""The gRPC transport accepts messages up to this many times the request limit, so that the
handlers, not the transport, refuse the ones in between (in grpc-go's words)."""


def transport_receive_limit(max_request_bytes: int) -> int:
    """What to give grpc.max_receive_message_length for a server with this --max-request-bytes."""
    return TRANSPORT_LIMIT_FACTOR * (max_request_bytes + GRPC_OVERHEAD_BYTES)


@dataclass(frozen=True, slots=True)
class UndecodableRequest:
    """What the deserializer hands on in place of a request whose bytes are not a valid message.

    `error`, when set, is the etcd error that explains the failure better than the decoder can.
    """

    reason: str
    error: errors.EtcdError | None = None


Explain = Callable[[bytes], errors.EtcdError | None]
EXPLAIN_UNDECODABLE: dict[str, Explain] = {"etcdserverpb.TxnRequest": explain_undecodable_txn}


class UndecodableRequestError(Exception):
    """Ends a request stream at a message that does not decode."""


def tolerant_deserializer(message_class: Any, max_bytes: int) -> Callable[[bytes], Any]:
    """Parse bytes as `message_class`; a parse failure becomes an UndecodableRequest, not an exception."""
    explain = EXPLAIN_UNDECODABLE.get(message_class.DESCRIPTOR.full_name)

    def decode(raw: bytes) -> Any:
        if len(raw) > max_bytes:
            message = f"grpc: received message larger than max ({len(raw)} vs. {max_bytes})"
            return UndecodableRequest(message, errors.EtcdError(grpc.StatusCode.RESOURCE_EXHAUSTED, message))
        try:
            return message_class.FromString(raw)
        except Exception as err:  # noqa: BLE001 - every decoder failure is the client's malformed request
            return UndecodableRequest(str(err) or type(err).__name__, explain(raw) if explain else None)

    return decode


def supported_for_learner(request: Any) -> bool:
    """etcd 3.4's isRPCSupportedForLearner: endpoint status, and reads that need no leader."""
    if isinstance(request, rpc_pb2.StatusRequest):
        return True
    if isinstance(request, rpc_pb2.RangeRequest):
        return bool(request.serializable)
    return False


def is_learner(etcd: EtcdServerApi) -> bool:
    """Whether this member is a learner now (etcd asks only when it is a member already)."""
    me = etcd.membership.get(etcd.member_id)
    return me is not None and me.is_learner


async def abort_undecodable(context: Any, request: UndecodableRequest) -> None:
    if request.error is not None:
        await errors.abort_with(context, request.error)
    await context.abort(grpc.StatusCode.INTERNAL, ERR_UNMARSHAL_PREFIX + request.reason)


class RequestStream:
    """The client's side of a stream, ending at the first message that does not decode."""

    def __init__(self, requests: Any) -> None:
        self._requests = aiter(requests)
        self.undecodable: UndecodableRequest | None = None

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> Any:
        request = await anext(self._requests)
        if isinstance(request, UndecodableRequest):
            self.undecodable = request
            raise UndecodableRequestError(request.reason)
        return request


Behavior = Callable[..., Any]


def _unary_unary(behavior: Behavior, etcd: EtcdServerApi,
                 fill_header: HeaderFill) -> Callable[[Any, Any], Awaitable[Any]]:
    async def handle(request: Any, context: Any) -> Any:
        if isinstance(request, UndecodableRequest):
            await abort_undecodable(context, request)
        if is_learner(etcd) and not supported_for_learner(request):
            await errors.abort_with(context, errors.ErrGRPCNotSupportedForLearner)
        REQUEST_CREDENTIALS.set(credentials_from_call(context))
        response = await errors.answer_or_abort(behavior(request, context), context)
        fill_header(response, etcd)
        return response

    return handle


def _unary_stream(behavior: Behavior, etcd: EtcdServerApi) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def handle(request: Any, context: Any) -> AsyncIterator[Any]:
        if isinstance(request, UndecodableRequest):
            await abort_undecodable(context, request)
        if is_learner(etcd):  # etcd's stream interceptor: a learner serves no stream
            await errors.abort_with(context, errors.ErrGRPCNotSupportedForLearner)
        REQUEST_CREDENTIALS.set(credentials_from_call(context))
        try:
            async for response in behavior(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # noqa: BLE001
            await errors.abort_with(context, err)

    return handle


def _stream_stream(behavior: Behavior, etcd: EtcdServerApi) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def handle(request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        if is_learner(etcd):
            await errors.abort_with(context, errors.ErrGRPCNotSupportedForLearner)
        REQUEST_CREDENTIALS.set(credentials_from_call(context))
        requests = RequestStream(request_iterator)
        try:
            async for response in behavior(requests, context):
                yield response
        except UndecodableRequestError:
            pass  # the servicer let the stream's end propagate; the status below says why
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # noqa: BLE001
            await errors.abort_with(context, err)
        if requests.undecodable is not None:
            # grpc-go ends the stream with the receive error; etcd's handlers return it as is.
            await abort_undecodable(context, requests.undecodable)

    return handle


def _ending_code(context: Any, err: BaseException) -> grpc.StatusCode:
    """The status a call that raised `err` ends with (an abort has set it on the context)."""
    if isinstance(err, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _counted_unary(handle: Callable[[Any, Any], Awaitable[Any]], key: MethodKey,
                   stats: GrpcStats) -> Callable[[Any, Any], Awaitable[Any]]:
    async def counted(request: Any, context: Any) -> Any:
        stats.started[key] += 1
        started_at = time.perf_counter() if stats.extensive else 0.0
        code = None
        try:
            return await handle(request, context)
        except BaseException as err:
            code = _ending_code(context, err)
            raise
        finally:
            stats.finish(key, code, started_at)

    return counted


def _counted_stream(handle: Callable[[Any, Any], AsyncIterator[Any]], key: MethodKey,
                    stats: GrpcStats) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def counted(request: Any, context: Any) -> AsyncIterator[Any]:
        stats.started[key] += 1
        started_at = time.perf_counter() if stats.extensive else 0.0
        code = None
        try:
            async for response in handle(request, context):
                yield response
        except BaseException as err:
            code = _ending_code(context, err)
            raise
        finally:
            stats.finish(key, code, started_at)

    return counted


def _counted_codecs(decode: Callable[[bytes], Any], encode: Callable[[Any], bytes], key: MethodKey,
                    stats: GrpcStats) -> dict[str, Any]:
    """Codecs that also count messages and bytes (etcd_network_client_grpc_*_bytes_total)."""
    msg_received, msg_sent = stats.msg_received, stats.msg_sent

    def counted_decode(raw: bytes) -> Any:
        msg_received[key] += 1
        stats.received_bytes += len(raw)
        return decode(raw)

    def counted_encode(message: Any) -> bytes:
        data = encode(message)
        msg_sent[key] += 1
        stats.sent_bytes += len(data)
        return data

    return {"request_deserializer": counted_decode, "response_serializer": counted_encode}


def grpc_type(method: MethodDescriptor) -> str:
    """go-grpc-prometheus' grpc_type label."""
    if method.client_streaming:
        return "bidi_stream" if method.server_streaming else "client_stream"
    return "server_stream" if method.server_streaming else "unary"


def method_handler(method: MethodDescriptor, behavior: Behavior, etcd: EtcdServerApi,
                   stats: GrpcStats | None = None) -> Any:
    """A grpc method handler for one etcd method, with the checks above around `behavior`,
    counted in `stats` when given."""
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    max_bytes = etcd.config.max_request_bytes + GRPC_OVERHEAD_BYTES
    decode = tolerant_deserializer(request_class, max_bytes)
    codecs: dict[str, Any] = {"request_deserializer": decode,
                              "response_serializer": response_class.SerializeToString}
    key: MethodKey = (grpc_type(method), method.containing_service.full_name, method.name)
    if stats is not None:
        stats.add_method(key)
        codecs = _counted_codecs(decode, response_class.SerializeToString, key, stats)
    if method.client_streaming and method.server_streaming:
        stream = _stream_stream(behavior, etcd)
        return grpc.stream_stream_rpc_method_handler(
            stream if stats is None else _counted_stream(stream, key, stats), **codecs)
    if method.server_streaming:
        stream = _unary_stream(behavior, etcd)
        return grpc.unary_stream_rpc_method_handler(
            stream if stats is None else _counted_stream(stream, key, stats), **codecs)
    if method.client_streaming:  # pragma: no cover - the etcd v3 API has no client-streaming-only call
        raise ValueError(f"client-streaming method {method.full_name} is not supported")
    unary = _unary_unary(behavior, etcd, fill_header_for(method.full_name))
    return grpc.unary_unary_rpc_method_handler(unary if stats is None else _counted_unary(unary, key, stats),
                                               **codecs)


def service_handlers(service: ServiceDescriptor, servicer: Any, etcd: EtcdServerApi,
                     stats: GrpcStats | None = None) -> dict[str, Any]:
    """Method name -> handler for every method of `service`, answered by `servicer`."""
    return {method.name: method_handler(method, getattr(servicer, method.name), etcd, stats)
            for method in service.methods}


class UnknownMethodHandler:
    """Answers any call no service claimed, with grpc-go's UNIMPLEMENTED message.

    A grpc generic handler (grpc only asks for `service`). It must be the last generic handler
    on the server: it claims every method it is asked about.
    """

    def __init__(self, known_services: set[str]) -> None:
        self._known_services = known_services

    def message_for(self, full_method: str) -> str:
        service, _, method = full_method.lstrip("/").rpartition("/")
        if service in self._known_services:
            return f"unknown method {method} for service {service}"
        return f"unknown service {service}"

    def service(self, handler_call_details: Any) -> Any:
        message = self.message_for(handler_call_details.method)

        async def refuse(request: bytes, context: Any) -> bytes:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
            raise AssertionError("grpc context.abort returned")  # pragma: no cover

        return grpc.unary_unary_rpc_method_handler(refuse)
