"""Bearer-token auth as an interceptor: each token belongs to one tenant and grants one scope.

Build tokens call CompressionService, inference tokens call GRPCInferenceService; health and
reflection stay open.  Servicers read the caller's tenant from :func:`tenant`.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac

import grpc

from server.config import Tenant
from server.errors import PermissionDeniedError, UnauthenticatedError
from server.interceptors import wrap_handler

DEFAULT_TENANT = "default"
_tenant: contextvars.ContextVar[str] = contextvars.ContextVar("edgeforge_tenant", default=DEFAULT_TENANT)
SCOPES = {"edgeforge.v1.CompressionService": "build", "inference.GRPCInferenceService": "inference"}


def tenant() -> str:
    """The tenant of the RPC being served (``default`` when auth is off)."""
    return _tenant.get()


def token_digest(token: str) -> bytes:
    """What the server keeps of a token: its sha256 (``sdkgen serve --auth`` files may give either)."""
    return hashlib.sha256(token.encode()).digest()


class AuthInterceptor(grpc.ServerInterceptor):
    """Tokens are held only as sha256 digests and compared with ``hmac.compare_digest`` against every one."""

    def __init__(self, tenants: tuple[Tenant, ...]) -> None:
        self._digests: list[tuple[bytes, tuple[str, str]]] = []
        for t in tenants:
            for scope, hashed in (("build", t.build_token_sha256), ("inference", t.inference_token_sha256)):
                self._digests += [(bytes.fromhex(h), (t.name, scope)) for h in hashed]

    def lookup(self, token: str) -> tuple[str, str] | None:
        """``(tenant, scope)`` of ``token``, or None when the server does not know it."""
        presented, found = token_digest(token), None
        for digest, who in self._digests:  # no early exit: the time taken says nothing about which one matched
            if hmac.compare_digest(presented, digest) and found is None:
                found = who
        return found

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        scope = SCOPES.get(handler_call_details.method.split("/")[1])
        if scope is None:
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        who = self._check(metadata.get("authorization", ""), scope)
        return wrap_handler(handler, lambda behavior, streams: _as_tenant(behavior, streams, who))

    def authorize(self, header: str, scope: str) -> str:
        """The tenant whose ``scope`` token is in ``header`` (an authorization value); raises when there is none."""
        who = self._check(header, scope)
        if isinstance(who, Exception):
            raise who
        return who[0]

    def _check(self, header: str, scope: str) -> tuple[str, str] | Exception:
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return UnauthenticatedError(
                "this server needs a bearer token: send metadata 'authorization: Bearer <token>' "
                "(sdkgen submit --token T)"
            )
        found = self.lookup(header[7:].strip())
        if found is None:
            return UnauthenticatedError("the bearer token is not known to this server; check the token you were given")
        if found[1] != scope:
            return PermissionDeniedError(
                f"this token is a {found[1]} token; calls to this service need a {scope} token"
            )
        return found


def _as_tenant(behavior, streams: bool, who):
    def enter():
        if isinstance(who, Exception):
            raise who
        _tenant.set(who[0])

    if streams:

        def stream(request, context):
            enter()
            yield from behavior(request, context)

        return stream

    def unary(request, context):
        enter()
        return behavior(request, context)

    return unary
