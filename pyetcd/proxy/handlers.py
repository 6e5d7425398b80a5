"""gRPC method handlers built from the service descriptors, so one table serves every etcd service."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

_HANDLER_KINDS: dict[tuple[bool, bool], Callable[..., Any]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def method_path(method: MethodDescriptor) -> str:
    """The method's wire name, e.g. `/etcdserverpb.KV/Range`."""
    return f"/{method.containing_service.full_name}/{method.name}"


def request_class(method: MethodDescriptor) -> Any:
    return GetMessageClass(method.input_type)


def response_class(method: MethodDescriptor) -> Any:
    return GetMessageClass(method.output_type)


def service_handler(service: ServiceDescriptor,
                    implementations: Mapping[str, Callable[..., Any]]) -> grpc.GenericRpcHandler:
    """A handler serving every method of `service` with the implementation named after it."""
    handlers = {}
    for method in service.methods:
        make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            implementations[method.name],
            request_deserializer=request_class(method).FromString,
            response_serializer=response_class(method).SerializeToString,
        )
    handler: grpc.GenericRpcHandler = grpc.method_handlers_generic_handler(service.full_name, handlers)
    return handler
