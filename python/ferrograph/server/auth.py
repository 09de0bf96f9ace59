"""Custom auth as LangGraph's server applies it: `langgraph.json`'s `"auth": {"path":
"./auth.py:auth"}` names a `langgraph_sdk.Auth`, loaded at start. Its `@auth.authenticate`
handler sees each request (but `OPEN_PATHS`: health, info, the web page) and names the user, or refuses it (401/403
with LangGraph's body); its `@auth.on...` handlers see each operation on a resource
(`authorize`), may stamp the value's metadata, deny it (403) or return a filter on the
resources' metadata (`matches`), which hides what it does not match (404, as langgraph dev).

Nothing here imports `langgraph_sdk`: the handlers, the `AuthContext` they get and the
`HTTPException` they raise are all reached through the user's `Auth` object."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.authentication import AuthCredentials, AuthenticationError, BaseUser
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ferrograph.server.graphs import GraphLoadError, import_target
from ferrograph.server.http import ApiError, error_response

OPEN_PATHS = frozenset({"/", "/ok", "/info", "/docs", "/openapi.json"})
"""Paths served without authentication, as LangGraph's server serves them (`/` is its root
health check, and ferrograph's web page)."""
OPEN_PREFIX = "/static/"
"""The web page's files, open as LangGraph's UI assets are (the data they show is not)."""

AUTHENTICATE_PARAMETERS = ("request", "body", "user", "path", "method", "scopes",
                           "path_params", "query_params", "headers", "authorization", "scope")
"""What an `@auth.authenticate` handler may ask for, by parameter name (LangGraph's list)."""

SERVED_ACTIONS = {"threads": ("create", "read", "update", "delete", "search", "create_run"),
                  "assistants": ("create", "read", "update", "delete", "search")}
"""The resources and actions the server's routes ask the `@auth.on` handlers about."""


def load_auth(spec: Any, base: Path) -> ServerAuth | None:
    """The `auth` key of `langgraph.json` (None: no custom auth). Fails as a graph does
    when the object cannot be imported or is not a usable `Auth`."""
    if spec is None:
        return None
    path = spec.get("path") if isinstance(spec, dict) else None
    if not isinstance(path, str) or not path:
        raise GraphLoadError("auth: 'path' must be './file.py:variable' or 'module:variable' "
                             "naming a langgraph_sdk Auth")
    auth = import_target(path, base, "auth")
    if not all(hasattr(auth, a) for a in ("_authenticate_handler", "_handlers",
                                           "_global_handlers")):
        raise GraphLoadError(f"auth: {path} is a {type(auth).__name__}, not a langgraph_sdk "
                             "Auth (auth = Auth() from langgraph_sdk)")
    handler = auth._authenticate_handler
    if handler is None:
        raise GraphLoadError(f"auth: the Auth at {path} has no @auth.authenticate handler")
    wanted = inspect.signature(handler).parameters
    unknown = [name for name, p in wanted.items()
               if name not in AUTHENTICATE_PARAMETERS and p.default is p.empty]
    if unknown:
        raise GraphLoadError(f"auth: the authenticate handler {handler.__name__} of {path} "
                             f"asks for {', '.join(unknown)}; it may ask for "
                             f"{', '.join(AUTHENTICATE_PARAMETERS)}")
    served = ServerAuth(auth, path, {n for n in wanted if n in AUTHENTICATE_PARAMETERS})
    uncovered = served.uncovered()
    if uncovered:
        logging.getLogger("ferrograph.server").warning(
            "auth %s: no @auth.on handler covers %s: those are allowed without "
            "authorization checks (add a global @auth.on to deny by default)", path,
            ", ".join(uncovered))
    return served


class AuthUser(BaseUser):
    """The user an authenticate handler names (an identity string, a dict with `identity`,
    or an object with one), as LangGraph's server hands it to handlers and runs: with
    `identity`, `display_name` (the identity by default), `is_authenticated` (True by
    default), and the handler's other fields as attributes and items."""

    def __init__(self, user: Any) -> None:
        self._user = _Fields(user) if isinstance(user, Mapping) else user

    @property
    def identity(self) -> str:
        return self._user.identity

    @property
    def is_authenticated(self) -> bool:
        return getattr(self._user, "is_authenticated", True)

    @property
    def display_name(self) -> str:
        return getattr(self._user, "display_name", self.identity)

    def dict(self) -> dict[str, Any]:
        fields = self._user.dict() if callable(getattr(self._user, "dict", None)) else {}
        return {"identity": self.identity, "is_authenticated": self.is_authenticated,
                "display_name": self.display_name, **fields}

    def model_dump(self) -> dict[str, Any]:
        """The user as a run's config shows it on the wire."""
        return self.dict()

    def __getattr__(self, name: str) -> Any:
        if name == "_user":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self._user, name)

    def __getitem__(self, key: str) -> Any:
        return self.dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.dict()

    def __iter__(self) -> Any:
        return iter(self.dict())

    def __len__(self) -> int:
        return len(self.dict())

    def get(self, key: str, default: Any = None) -> Any:
        return self.dict().get(key, default)

    def keys(self) -> Any:
        return self.dict().keys()

    def values(self) -> Any:
        return self.dict().values()

    def items(self) -> Any:
        return self.dict().items()

    def __str__(self) -> str:
        return str(self._user)


class _Fields:
    """A user's dict with its keys also as attributes (nested dicts likewise)."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = dict(fields)

    def __getattr__(self, name: str) -> Any:
        try:
            value = self.__dict__["_fields"][name]
        except KeyError:  # also while a copy is being made
            raise AttributeError(name) from None
        return _Fields(value) if isinstance(value, Mapping) else value

    def dict(self) -> dict[str, Any]:
        return self._fields

    def __str__(self) -> str:
        return str(self._fields)


def _as_user(user: Any) -> BaseUser:
    if isinstance(user, BaseUser):
        return user
    if isinstance(user, str):
        return AuthUser({"identity": user})
    if hasattr(user, "identity") or (isinstance(user, Mapping) and "identity" in user):
        return AuthUser(user)
    raise ValueError("Expected a BaseUser instance with required property: identity (str). "
                     "Optional properties are: is_authenticated (bool, defaults to True) and "
                     "display_name (str, defaults to identity). Got "
                     f"{type(user)} instead")


def _user_and_permissions(result: Any) -> tuple[BaseUser, list[str]]:
    """What an authenticate handler returned, as LangGraph reads it: `(permissions, user)`,
    or a user carrying `permissions` (attribute or key), or a user without any."""
    if isinstance(result, tuple):
        if len(result) != 2:
            raise ValueError("Expected a tuple with two elements (permissions, user), got "
                             f"{len(result)}")
        permissions, user = result
    elif hasattr(result, "permissions"):
        permissions, user = result.permissions, result
    elif isinstance(result, Mapping) and "permissions" in result:
        permissions, user = result["permissions"], result
    else:
        permissions, user = [], result
    return _as_user(user), list(permissions)


class AuthRefused(Exception):
    """A request the authenticate handler refused: its status, body and headers."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None
                 ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


class ServerAuth:
    """The user's `Auth` object and what the server does with its handlers."""

    def __init__(self, auth: Any, path: str, parameters: set[str]) -> None:
        self.auth = auth
        self.path = path
        self.parameters = parameters

    async def authenticate(self, scope: Scope) -> tuple[BaseUser, list[str]]:
        """The request's user and permissions; `AuthRefused` when the handler refuses it
        (its 401 or 403 as given; a `ValueError`, its own or for a user without identity,
        is a 400; any other `Auth.exceptions.HTTPException` is the server's 500, as
        LangGraph's)."""
        handler = self.auth._authenticate_handler
        kwargs = self._arguments(scope)
        try:
            if inspect.iscoroutinefunction(handler):
                result = await handler(**kwargs)
            else:
                result = await run_in_threadpool(handler, **kwargs)
            return _user_and_permissions(result)
        except self.auth.exceptions.HTTPException as e:
            if e.status_code in (401, 403):
                raise AuthRefused(e.status_code, str(e.detail)) from None
            raise
        except HTTPException as e:
            raise AuthRefused(e.status_code, str(e.detail), e.headers) from None
        except AuthenticationError as e:
            raise AuthRefused(401 if getattr(e, "status_code", None) == 401 else 403,
                              str(e)) from None
        except ValueError as e:  # LangGraph's server answers any ValueError so
            raise AuthRefused(400, str(e)) from None

    def _arguments(self, scope: Scope) -> dict[str, Any]:
        """The request's parts the handler asked for, by parameter name."""
        raw_headers = dict(scope.get("headers") or [])
        parts: dict[str, Any] = {
            "scope": lambda: scope,
            "request": lambda: Request(scope),
            "user": lambda: scope.get("user"),
            "scopes": lambda: [],
            "path_params": lambda: scope.get("path_params", {}),
            "path": lambda: scope["path"],
            "query_params": lambda: QueryParams(scope.get("query_string") or b""),
            "headers": lambda: raw_headers,
            "authorization": lambda: (raw_headers.get(b"authorization") or b"").decode()
            or None,
            "method": lambda: scope.get("method", "GET"),
        }
        return {name: parts[name]() for name in self.parameters if name in parts}

    def uncovered(self) -> list[str]:
        """The `resource.action` pairs the server asks about that no handler covers, when
        some are covered (an `Auth` with no `@auth.on` at all only authenticates)."""
        if not self.auth._handlers and not self.auth._global_handlers:
            return []
        return [f"{r}.{a}" for r, actions in SERVED_ACTIONS.items() for a in actions
                if self.handler(r, a) is None]

    def handler(self, resource: str, action: str) -> Any:
        """The most specific `@auth.on` handler: resource and action, then the resource's,
        then the action's, then one for everything."""
        for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
            if key in self.auth._handlers:
                return self.auth._handlers[key][-1]
        return self.auth._global_handlers[-1] if self.auth._global_handlers else None

    async def authorize(self, user: BaseUser, permissions: list[str], resource: str,
                        action: str, value: dict[str, Any]) -> dict[str, Any] | None:
        """Runs the handler for `resource`/`action` on `value` (which it may change): None
        to allow, a filter dict to allow only what matches it; `ApiError` 403 when it
        returns False or asserts, 400 when it raises `ValueError`, its own status when it
        raises `HTTPException`."""
        handler = self.handler(resource, action)
        if handler is None:
            return None
        ctx = self.auth.types.AuthContext(user=user, permissions=permissions,
                                          resource=resource, action=action)
        try:
            result = await handler(ctx=ctx, value=value)
        except self.auth.exceptions.HTTPException as e:
            raise ApiError(e.status_code, e.detail,
                           dict(e.headers) if e.headers else None) from None
        except AssertionError as e:
            raise ApiError(403, str(e)) from None
        except ValueError as e:  # LangGraph's server answers any ValueError so
            raise ApiError(400, str(e)) from None
        if result is None or result is True:
            return None
        if result is False:
            raise ApiError(403, "Forbidden")
        if not isinstance(result, dict):
            raise ApiError(500, "Auth handler returned invalid result. Expected filter dict, "
                                f"None, or boolean. Got {type(result)} instead.")
        return result


class AuthMiddleware:
    """Authenticates every request but those to `OPEN_PATHS`: a refused one gets its status
    and `{"detail": ...}`; an accepted one carries its user in `scope["user"]` and its
    permissions in `scope["auth"]`, as Starlette's authentication does."""

    def __init__(self, app: ASGIApp, auth: ServerAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or \
                scope["path"].startswith(OPEN_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            user, permissions = await self.auth.authenticate(scope)
        except AuthRefused as e:
            await error_response(e.status, e.detail, e.headers)(scope, receive, send)
            return
        scope["user"], scope["auth"] = user, AuthCredentials(permissions)
        await self.app(scope, receive, send)


async def authorize(request: Request, resource: str, action: str, value: dict[str, Any]
                    ) -> dict[str, Any] | None:
    """The custom auth's verdict on the request doing `action` on `resource` with `value`
    (None without custom auth, or when everything is allowed). See `ServerAuth.authorize`."""
    auth = request.app.state.server.auth
    if auth is None:
        return None
    return await auth.authorize(request.scope["user"], request.scope["auth"].scopes,
                                resource, action, value)


def run_user(request: Request) -> dict[str, Any]:
    """The `configurable` keys naming the caller in a run's config, as LangGraph's server
    sets them (without custom auth: no user, identity "", no permissions)."""
    if request.app.state.server.auth is None:
        return {"langgraph_auth_user": None, "langgraph_auth_user_id": "",
                "langgraph_auth_permissions": []}
    user = request.scope["user"]
    return {"langgraph_auth_user": user, "langgraph_auth_user_id": user.identity,
            "langgraph_auth_permissions": list(request.scope["auth"].scopes)}


_NESTING_LIMIT = 2


def matches(metadata: dict[str, Any], filters: dict[str, Any] | None, depth: int = 0) -> bool:
    """Whether a resource's metadata passes an auth filter: keys equal to a value or
    `{"$eq": value}`, lists holding `{"$contains": item or [items]}`, `$or` / `$and` over
    lists of at least two filters (nested at most twice); all keys must pass."""
    if depth > _NESTING_LIMIT:
        raise ApiError(500, "Your auth handler returned a filter with too many nested "
                            "operators. The maximum depth for nested operators is 2. Please "
                            "simplify your filter.")
    if not filters:
        return True
    for op in ("$or", "$and"):
        if op in filters:
            groups = filters[op]
            if not isinstance(groups, list) or len(groups) < 2:
                raise ApiError(500, f"Your auth handler returned a filter with an invalid {op} "
                                    f"operator. The {op} operator must be a list of at least 2 "
                                    "filter objects. Check the filter returned by your auth "
                                    "handler.")
            results = [matches(metadata, g, depth + 1) for g in groups]
            if not (any(results) if op == "$or" else all(results)):
                return False
            rest = {k: v for k, v in filters.items() if k != op}
            return matches(metadata, rest, depth + 1) if rest else True
    return all(_key_matches(metadata, key, wanted) for key, wanted in filters.items())


def _key_matches(metadata: dict[str, Any], key: str, wanted: Any) -> bool:
    if key not in metadata:
        return False
    have = metadata[key]
    if not isinstance(wanted, dict):
        return have == wanted
    op, operand = next(iter(wanted.items()))
    if op == "$eq":
        return have == operand
    if op == "$contains":
        if not isinstance(have, list):
            return False
        return all(item in have for item in operand) if isinstance(operand, list) \
            else operand in have
    return True  # an unknown operator filters nothing, as LangGraph's in-memory server
