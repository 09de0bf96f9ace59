"""The custom auth the server auth tests serve (`langgraph-auth.json`): a
`langgraph_sdk.Auth` as a user of LangGraph's server writes one. Bearer tokens name users;
every resource is stamped with its owner and filtered by it, with a few handlers more
specific than the global one (a `$or` filter, `$contains`, a permission check that raises,
an `assert`, a handler that returns False). The users come in each form a handler may name
them (a dict, a bare identity, a `(permissions, user)` pair, an object), and some tokens
make the handler fail as a user's code can."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

class Member:
    """A user object of the application's own: what counts is its `identity`."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.permissions = ["runs:create"]


USERS: dict[str, Any] = {
    "token-alice": {"identity": "alice", "display_name": "Alice",
                    "permissions": ["runs:create", "threads:delete"]},
    "token-bob": {"identity": "bob", "permissions": ["runs:create", "threads:delete"]},
    "token-carol": "carol",  # a bare identity: no permissions
    # permissions and user apart; a field of its own (the handlers read `user.quota.left`)
    "token-dave": (["runs:create"], {"identity": "dave", "quota": {"left": 0}}),
    "token-erin": Member("erin"),
    "token-nobody": None,  # not a user: LangGraph's server answers 400
}


@auth.authenticate
async def authenticate(authorization: str | None, method: str, path: str) -> Any:
    if not authorization:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if token == "token-teapot":  # not 401/403: the server's own 500
        raise Auth.exceptions.HTTPException(status_code=418, detail="teapot")
    if token == "token-broken":
        raise ValueError("the token store is down")
    if scheme.lower() != "bearer" or token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid bearer token")
    return USERS[token]


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    """Everything not matched below: stamped with its owner on the way in, and only the
    owner's resources visible."""
    value.setdefault("metadata", {})["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.read
async def read_own_or_shared(ctx: Auth.types.AuthContext, value: dict[str, Any]
                             ) -> dict[str, Any]:
    """A thread is readable by its owner and by those its metadata lists as `readers`."""
    return {"$or": [{"owner": ctx.user.identity},
                    {"readers": {"$contains": ctx.user.identity}}]}


@auth.on.threads.create_run
async def may_run(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    if "runs:create" not in ctx.permissions:
        raise Auth.exceptions.HTTPException(
            status_code=403, detail=f"{ctx.user.identity} may not start runs")
    quota = getattr(ctx.user, "quota", None)
    if quota is not None and quota.left == 0:
        raise Auth.exceptions.HTTPException(status_code=429, detail="no runs left",
                                            headers={"Retry-After": "60"})
    value.setdefault("metadata", {})["owner"] = ctx.user.identity
    if value["metadata"].get("rewrite"):  # what the run gets, changed by the handler
        kwargs = value["kwargs"]
        kwargs["config"].setdefault("configurable", {})["injected"] = ctx.user.identity
        kwargs["input"] = {"count": 40}
    return {"owner": {"$eq": ctx.user.identity}}


@auth.on.threads.delete
async def may_delete(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    assert "threads:delete" in ctx.permissions, f"{ctx.user.identity} may not delete"
    return {"owner": ctx.user.identity}


@auth.on.assistants
async def own_or_system_assistants(ctx: Auth.types.AuthContext, value: dict[str, Any]
                                   ) -> dict[str, Any]:
    value.setdefault("metadata", {})["owner"] = ctx.user.identity
    return {"$or": [{"owner": ctx.user.identity}, {"created_by": "system"}]}


@auth.on.assistants.delete
async def no_assistant_deletes(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> bool:
    return False
