"""What each route's JSON body may hold, and `check`, which answers a body that breaks it
as LangGraph's server does: a 422 whose `detail` is a JSON-schema error in the words and
layout of the validator LangGraph's server uses (the failing value, the keyword, where in
the schema and where in the body). The shapes are the LangGraph Server API's request bodies,
written here in a small JSON-schema subset: `type`, `enum`, `anyOf`, `oneOf`, `allOf`,
`properties`, `required`, `items`, `additionalProperties`, `minimum`/`maximum`,
`minLength`, `maxProperties` and `$ref` to the named shapes below."""

from __future__ import annotations

from typing import Any

import orjson

_ANY_JSON = ["object", "array", "number", "string", "boolean", "null"]
_STREAM_MODES = ["values", "messages", "messages-tuple", "tasks", "checkpoints", "updates",
                 "events", "debug", "custom"]
_OBJECT = {"type": "object"}
_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_BREAKPOINTS = {"anyOf": [{"type": "string", "enum": ["*"]}, _STRINGS]}
_TTL = {"type": "object", "properties": {
    "strategy": {"type": "string", "enum": ["delete", "keep_latest"]},
    "ttl": {"type": "number"}}}


def _page(limit_default_max: int = 1000) -> dict[str, Any]:
    return {"limit": {"type": "integer", "minimum": 1, "maximum": limit_default_max},
            "offset": {"type": "integer", "minimum": 0}}


def _run_create(stateful: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "assistant_id": {"anyOf": [_STRING, _STRING]},
        **({"checkpoint": {"type": "object", "$ref": "CheckpointConfig"}} if stateful else {}),
        "input": {"anyOf": [{"type": t} for t in _ANY_JSON]},
        "command": {"anyOf": [{"$ref": "Command"}, {"type": "null"}]},
        "metadata": _OBJECT,
        "config": {"type": "object", "properties": {
            "tags": _STRINGS, "recursion_limit": {"type": "integer"},
            "configurable": _OBJECT}},
        "context": _OBJECT,
        "webhook": {"type": "string", "minLength": 1},
        **({"interrupt_before": _BREAKPOINTS, "interrupt_after": _BREAKPOINTS}
           if stateful else {}),
        "stream_mode": {"anyOf": [
            {"type": "array", "items": {"type": "string", "enum": _STREAM_MODES}},
            {"type": "string", "enum": _STREAM_MODES}]},
        "stream_subgraphs": {"type": "boolean"},
        "stream_resumable": {"type": "boolean"},
        "feedback_keys": _STRINGS,
        **({"multitask_strategy": {"type": "string",
                                   "enum": ["reject", "rollback", "interrupt", "enqueue"]},
            "if_not_exists": {"type": "string", "enum": ["create", "reject"]}}
           if stateful else {"on_completion": {"type": "string", "enum": ["delete", "keep"]}}),
        "after_seconds": {"type": "number"},
        "checkpoint_during": {"type": "boolean"},
        "durability": {"type": "string", "enum": ["sync", "async", "exit"]},
    }
    return {"type": "object", "required": ["assistant_id"], "properties": props}


def _streaming(base: str) -> dict[str, Any]:
    """A run whose response follows it (stream, wait): `base` plus `on_disconnect`."""
    return {"allOf": [{"$ref": base}, {"type": "object", "properties": {
        "on_disconnect": {"type": "string", "enum": ["cancel", "continue"]}}}]}


NAMED: dict[str, dict[str, Any]] = {
    "CheckpointConfig": {"type": "object", "properties": {
        "thread_id": _STRING, "checkpoint_ns": _STRING, "checkpoint_id": _STRING,
        "checkpoint_map": _OBJECT}},
    "Send": {"type": "object", "required": ["node", "input"], "properties": {
        "node": _STRING, "input": {"type": _ANY_JSON}}},
    "Command": {"type": "object", "properties": {
        "update": {"type": ["object", "array", "null"]},
        "resume": {"type": _ANY_JSON},
        "goto": {"anyOf": [{"$ref": "Send"}, {"type": "array", "items": {"$ref": "Send"}},
                           _STRING, _STRINGS, {"type": "null"}]}}},
    "RunCreateStateful": _run_create(stateful=True),
    "RunCreateStateless": _run_create(stateful=False),
}
"""Shapes other shapes refer to (`$ref`); errors inside one are located from the shape."""

BODIES: dict[str, dict[str, Any]] = {
    "RunCreateStateful": NAMED["RunCreateStateful"],
    "RunCreateStateless": NAMED["RunCreateStateless"],
    "RunCreateStreamingStateful": _streaming("RunCreateStateful"),
    "RunCreateStreamingStateless": _streaming("RunCreateStateless"),
    "RunsCancel": {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["pending", "running", "all"]},
        "thread_id": _STRING, "run_ids": _STRINGS},
        "oneOf": [{"required": ["status"]}, {"required": ["thread_id", "run_ids"]}]},
    "ThreadCreate": {"type": "object", "properties": {
        "thread_id": _STRING, "metadata": _OBJECT,
        "if_exists": {"type": "string", "enum": ["raise", "do_nothing"]}, "ttl": _TTL,
        "supersteps": {"type": "array", "items": {
            "type": "object", "required": ["updates"], "properties": {
                "updates": {"type": "array", "items": {
                    "type": "object", "required": ["as_node"], "properties": {
                        "values": {"anyOf": [{"type": "array", "items": _OBJECT}, _OBJECT,
                                             {"type": "null"}]},
                        "command": {"anyOf": [{"$ref": "Command"}, {"type": "null"}]},
                        "as_node": _STRING}}}}}}}},
    "ThreadPatch": {"type": "object", "properties": {"metadata": _OBJECT, "ttl": _TTL}},
    "ThreadSearchRequest": {"type": "object", "properties": {
        "ids": _STRINGS, "metadata": _OBJECT, "values": _OBJECT,
        "status": {"type": "string", "enum": ["idle", "busy", "interrupted", "error"]},
        **_page(),
        "sort_by": {"type": "string", "enum": ["thread_id", "status", "created_at",
                                               "updated_at", "state_updated_at"]},
        "sort_order": {"type": "string", "enum": ["asc", "desc"]},
        "select": _STRINGS,
        "extract": {"type": "object", "additionalProperties": _STRING, "maxProperties": 10}}},
    "ThreadCountRequest": {"type": "object", "properties": {
        "metadata": _OBJECT, "values": _OBJECT,
        "status": {"type": "string", "enum": ["idle", "busy", "interrupted", "error"]}}},
    "ThreadStateUpdate": {"type": "object", "properties": {
        "values": {"anyOf": [{"type": "array"}, _OBJECT, {"type": "null"}]},
        "checkpoint": {"$ref": "CheckpointConfig"}, "as_node": _STRING}},
    "ThreadStateCheckpointRequest": {"type": "object", "required": ["checkpoint"],
                                     "properties": {"checkpoint": {"$ref": "CheckpointConfig"},
                                                    "subgraphs": {"type": "boolean"}}},
    "ThreadStateSearch": {"type": "object", "properties": {
        "limit": {"type": "integer", "maximum": 1000, "minimum": 1},
        "before": {"$ref": "CheckpointConfig"}, "metadata": _OBJECT,
        "checkpoint": {"$ref": "CheckpointConfig"}}},
    "AssistantCreate": {"type": "object", "required": ["graph_id"], "properties": {
        "assistant_id": _STRING, "graph_id": _STRING, "config": _OBJECT, "context": _OBJECT,
        "metadata": _OBJECT, "if_exists": {"type": "string", "enum": ["raise", "do_nothing"]},
        "name": _STRING, "description": {"type": ["string", "null"]}}},
    "AssistantPatch": {"type": "object", "properties": {
        "graph_id": _STRING, "config": _OBJECT, "context": _OBJECT, "metadata": _OBJECT,
        "name": _STRING, "description": _STRING}},
    "AssistantSearchRequest": {"type": "object", "properties": {
        "metadata": _OBJECT, "graph_id": _STRING, "name": _STRING, **_page(),
        "sort_by": {"type": "string", "enum": ["assistant_id", "created_at", "updated_at",
                                               "name", "graph_id"]},
        "sort_order": {"type": "string", "enum": ["asc", "desc"]}, "select": _STRINGS}},
    "AssistantCountRequest": {"type": "object", "properties": {
        "metadata": _OBJECT, "graph_id": _STRING, "name": _STRING}},
    "AssistantVersionsSearchRequest": {"type": "object", "properties": {
        "metadata": _OBJECT, **_page()}},
    "AssistantVersionChange": {"type": "object", "properties": {"version": {"type": "integer"}}},
}
"""Each route's body by the name LangGraph's API gives it."""


class BodyError(Exception):
    """A body that breaks its shape; `str()` is LangGraph's `detail`."""


def check(body: Any, shape: str) -> None:
    """Raises `BodyError` for the first place where `body` breaks `BODIES[shape]`."""
    found = _first_error(body, BODIES[shape], "", "")
    if found is not None:
        message, keyword, where, at, value = found
        raise BodyError(f"{message}\n\nFailed validating \"{keyword}\" in schema{where}\n\n"
                        f"On instance{at}:\n    {_shown(value)}")


def _shown(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return kind == "number" or isinstance(value, int) or float(value).is_integer()


def _candidates(options: list[Any]) -> str:
    shown = [_shown(o) for o in options]
    if len(shown) == 1:
        return shown[0]
    if len(shown) <= 3:
        return ", ".join(shown[:-1]) + " or " + shown[-1]
    return f"{shown[0]}, {shown[1]} or {len(shown) - 2} other candidates"


Error = tuple[str, str, str, str, Any]
"""(message, keyword, schema location, body location, failing value)"""


def _first_error(value: Any, schema: dict[str, Any], where: str, at: str) -> Error | None:
    for keyword, rule in schema.items():
        found = _keyword_error(value, schema, keyword, rule, where, at)
        if found is not None:
            return found
    return None


def _keyword_error(value: Any, schema: dict[str, Any], keyword: str, rule: Any, where: str,
                   at: str) -> Error | None:
    if keyword == "$ref":
        return _first_error(value, NAMED[rule], f'["components"]["schemas"]["{rule}"]', at)
    if keyword == "type":
        kinds = rule if isinstance(rule, list) else [rule]
        if any(_is_type(value, k) for k in kinds):
            return None
        if isinstance(rule, list):
            names = ", ".join(f'"{k}"' for k in sorted(kinds))
            return f"{_shown(value)} is not of types {names}", keyword, where, at, value
        return f'{_shown(value)} is not of type "{rule}"', keyword, where, at, value
    if keyword == "enum":
        if value in rule:
            return None
        return f"{_shown(value)} is not one of {_candidates(rule)}", keyword, where, at, value
    if keyword in ("anyOf", "oneOf"):
        # counted only as far as the answer needs: anyOf's first match, oneOf's second
        enough = 1 if keyword == "anyOf" else 2
        passing = 0
        for option in rule:
            if _first_error(value, option, "", "") is None:
                passing += 1
                if passing == enough:
                    break
        if keyword == "anyOf" and passing:
            return None
        if keyword == "oneOf" and passing == 1:
            return None
        if passing > 1:
            message = (f"{_shown(value)} is valid under more than one of the schemas listed in the "
                       f"'{keyword}' keyword")
        else:
            message = (f"{_shown(value)} is not valid under any of the schemas listed in the "
                       f"'{keyword}' keyword")
        return message, keyword, where, at, value
    if keyword == "allOf":
        for n, part in enumerate(rule):
            found = _first_error(value, part, f'{where}["allOf"][{n}]', at)
            if found is not None:
                return found
        return None
    if not isinstance(value, (dict, list, str, int, float)) or isinstance(value, bool):
        return None  # the remaining keywords apply to objects, arrays, strings, numbers
    if keyword == "required" and isinstance(value, dict):
        for name in rule:
            if name not in value:
                return f'"{name}" is a required property', keyword, where, at, value
    elif keyword == "properties" and isinstance(value, dict):
        for name, part in rule.items():
            if name in value:
                found = _first_error(value[name], part, f'{where}["properties"]["{name}"]',
                                     f'{at}["{name}"]')
                if found is not None:
                    return found
    elif keyword == "additionalProperties" and isinstance(value, dict):
        listed = schema.get("properties", {})
        for name, item in value.items():
            if name not in listed:
                found = _first_error(item, rule, f'{where}["additionalProperties"]',
                                     f'{at}["{name}"]')
                if found is not None:
                    return found
    elif keyword == "items" and isinstance(value, list):
        for n, item in enumerate(value):
            found = _first_error(item, rule, f'{where}["items"]', f"{at}[{n}]")
            if found is not None:
                return found
    elif keyword == "maxProperties" and isinstance(value, dict) and len(value) > rule:
        return f"{_shown(value)} has more than {rule} properties", keyword, where, at, value
    elif keyword == "minLength" and isinstance(value, str) and len(value) < rule:
        unit = "character" if rule == 1 else "characters"
        return f"{_shown(value)} is shorter than {rule} {unit}", keyword, where, at, value
    elif keyword in ("minimum", "maximum") and isinstance(value, (int, float)) and \
            not isinstance(value, bool):
        if keyword == "minimum" and value < rule:
            return f"{_shown(value)} is less than the minimum of {rule}", keyword, where, at, value
        if keyword == "maximum" and value > rule:
            return f"{_shown(value)} is greater than the maximum of {rule}", keyword, where, at, value
    return None
