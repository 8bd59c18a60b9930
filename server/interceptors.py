"""Cross-cutting concerns as server interceptors: error mapping (and, in auth.py, bearer tokens)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from compressor.errors import EdgeForgeError
from server.errors import status_for

log = logging.getLogger("edgeforge.server")


def wrap_handler(handler: grpc.RpcMethodHandler | None, wrap: Callable[[Callable, bool], Callable]):
    """Return ``handler`` with its behavior replaced by ``wrap(behavior, streams_response)``."""
    if handler is None:
        return None
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
    )
    for attr, factory, streams in kinds:
        behavior = getattr(handler, attr)
        if behavior is not None:
            return factory(
                wrap(behavior, streams),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, EdgeForgeError):
        context.abort(status_for(exc), str(exc))
    if isinstance(exc, MemoryError):
        log.warning("an RPC ran out of memory")
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "the server ran out of memory for this call; send a smaller request"
        )
    log.exception("unexpected error in RPC")
    context.abort(grpc.StatusCode.INTERNAL, f"internal server error ({type(exc).__name__}); see the server log")


class ErrorInterceptor(grpc.ServerInterceptor):
    """Turn EdgeForge errors raised by servicers into status codes with their message (server/errors.py)."""

    def intercept_service(self, continuation, handler_call_details):
        return wrap_handler(continuation(handler_call_details), self._wrap)

    @staticmethod
    def _wrap(behavior, streams_response):
        if streams_response:

            def stream(request, context):
                try:
                    yield from behavior(request, context)
                except Exception as exc:
                    if _is_abort(exc):
                        raise
                    _abort(context, exc)

            return stream

        def unary(request, context):
            try:
                return behavior(request, context)
            except Exception as exc:
                if _is_abort(exc):
                    raise
                _abort(context, exc)

        return unary


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises a bare ``Exception()`` once the status is set; never remap it.
    return type(exc) is Exception and not exc.args
