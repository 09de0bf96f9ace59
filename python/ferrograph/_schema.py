"""Reading state schemas (TypedDict, dataclass, Pydantic) into state keys and reducers."""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
import weakref
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from langchain_core.utils.pydantic import create_model_v2
from pydantic import BaseModel, TypeAdapter
from typing_extensions import NotRequired, Required, is_typeddict

from ferrograph.pregel._delta import DeltaReducer, is_delta_channel

MISSING = object()
"""Marks a key with no start value."""

ROOT = "__root__"
"""The one key of a graph whose state schema is not a class of keys (`StateGraph(list)`,
`StateGraph(Annotated[list, add])`): LangGraph's root channel."""


@dataclasses.dataclass(frozen=True, slots=True)
class KeySchema:
    """One state key: how writes combine, and its value before anything is written."""

    name: str
    reducer: Callable[[Any, Any], Any] | None
    start: Callable[[], Any] | None
    """Makes the start value of a reducer key (e.g. `list` for `Annotated[list, add]`)."""
    annotation: Any = Any
    """The key's annotation, `Required`/`NotRequired` taken off (the type LangGraph gives
    the key's channel, which its JSON schemas show)."""
    untracked: bool = False
    """`Annotated[..., UntrackedValue]` (LangGraph's channel): never saved in checkpoints."""
    ephemeral: bool = False
    """`Annotated[..., EphemeralValue]` (LangGraph's channel): emptied by every step that
    does not write it."""
    delta: Any = None
    """`Annotated[..., DeltaChannel(reducer)]`: LangGraph's channel (see `pregel/_delta`);
    `reducer` is then its `DeltaReducer`."""


def _reducer_of(extras: tuple[Any, ...]) -> Callable[[Any, Any], Any] | None:
    """The reducer an `Annotated` key declares, by LangGraph's rule: its last extra, when it
    is a function (or other callable object), taking exactly two positional parameters.
    Another arity is an error, raised when the schema is read (as LangGraph raises it at
    `StateGraph(...)`). Classes are not reducers."""
    meta = extras[-1] if extras else None
    if not callable(meta) or isinstance(meta, type):
        return None
    try:
        sig = inspect.signature(meta)
    except (TypeError, ValueError):  # a builtin with no signature: taken at its word
        return meta
    positional = sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in sig.parameters.values()
    )
    if positional != 2:
        raise ValueError(f"Invalid reducer signature. Expected (a, b) -> c. Got {sig}")
    return meta


_ABSTRACT_TO_CONCRETE = {
    collections.abc.Sequence: list,
    collections.abc.MutableSequence: list,
    collections.abc.Set: set,
    collections.abc.MutableSet: set,
    collections.abc.Mapping: dict,
    collections.abc.MutableMapping: dict,
}


def _start_factory(typ: Any) -> Callable[[], Any] | None:
    """A reducer key starts as its type's empty value (`[]` for a list), when it has one."""
    origin = get_origin(typ) or typ
    origin = _ABSTRACT_TO_CONCRETE.get(origin, origin)
    if not isinstance(origin, type) or origin in (typing.Any, object):
        return None
    try:
        origin()
    except Exception:
        return None
    return origin


def schema_hints(schema: Any) -> dict[str, Any]:
    """Field annotations of a schema class, with `Annotated` extras kept."""
    if schema is None or schema is Any:
        return {}
    try:
        return get_type_hints(schema, include_extras=True)
    except Exception:
        return dict(getattr(schema, "__annotations__", {}))


def _unwrap_required(hint: Any) -> Any:
    """`X` for `Required[X]` / `NotRequired[X]` (TypedDict markers), else `hint`."""
    while get_origin(hint) in (Required, NotRequired):
        hint = get_args(hint)[0]
    return hint


_MANAGED_BASES = {("langgraph.managed.base", "ManagedValue"),
                  ("ferrograph.managed", "ManagedValue")}
_SUPPORTED_MANAGED = {
    (module, name)
    for module in ("langgraph.managed.is_last_step", "ferrograph.managed")
    for name in ("IsLastStepManager", "RemainingStepsManager")
}


def is_managed(value: Any) -> bool:
    """Whether `value` is a managed value class (LangGraph's or ferrograph's)."""
    return isinstance(value, type) and any(
        (c.__module__, c.__qualname__) in _MANAGED_BASES for c in value.__mro__)


def managed_of(hint: Any) -> type | None:
    """The managed value class a key's annotation names, by LangGraph's rule: the last
    `Annotated` extra, looked for through the first argument of wrappers such as
    `NotRequired[...]`."""
    meta = getattr(hint, "__metadata__", None)
    if meta:
        kind = get_origin(meta[-1]) or meta[-1]
        if is_managed(kind):
            return kind
    if get_origin(hint) is not None and (args := get_args(hint)) and _truthy(args[0]):
        return managed_of(args[0])
    return None


def _truthy(value: Any) -> bool:
    try:
        return bool(value)
    except Exception:  # noqa: BLE001 - an annotation argument with an odd __bool__
        return False


def read_managed(schema: Any) -> dict[str, type]:
    """The managed keys a schema declares (see `ferrograph.managed`), in declaration
    order. A kind other than `RemainingSteps` and `IsLastStep` is refused: computing it
    needs LangGraph's scratchpad, which ferrograph does not keep."""
    managed = {}
    for name, hint in schema_hints(schema).items():
        if (kind := managed_of(_unwrap_required(hint))) is None:
            continue
        if (kind.__module__, kind.__qualname__) not in _SUPPORTED_MANAGED:
            raise NotImplementedError(
                f"ferrograph does not support the managed value {kind.__name__} (state "
                f"key '{name}'): it computes RemainingSteps and IsLastStep only")
        managed[name] = kind
    return managed


def managed_values(managed: dict[str, type], step: int, stop: int) -> dict[str, Any]:
    """The values of `managed` keys for a task of `step` in a run whose last step is
    `stop` (its recursion limit)."""
    from ferrograph.managed import Steps

    steps = Steps(step, stop)
    return {name: kind.get(steps) for name, kind in managed.items()}  # type: ignore[attr-defined]


def root_value(state: dict[str, Any]) -> Any:
    """What a node or router of a root graph is given: the root value itself."""
    return state.get(ROOT)


def is_root_schema(schema: Any) -> bool:
    """Whether `schema` is no class of keys but the type of the whole state (LangGraph's
    test: it has no `__annotations__`), so the state is its one root key `ROOT`."""
    return schema is not None and not hasattr(schema, "__annotations__")


def _key_of(name: str, hint: Any) -> KeySchema:
    reducer = None
    start = None
    untracked = ephemeral = False
    hint = _unwrap_required(hint)
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        if (delta := next((e for e in extras if is_delta_channel(e)), None)) is not None:
            start = _start_factory(_unwrap_required(base))
            return KeySchema(name, DeltaReducer(delta, start), start, hint, delta=delta)
        reducer = _reducer_of(tuple(extras))
        if reducer is not None:
            start = _start_factory(_unwrap_required(base))
        names = {getattr(e, "__name__", type(e).__name__) for e in extras}
        untracked = "UntrackedValue" in names
        ephemeral = reducer is None and "EphemeralValue" in names
    return KeySchema(name, reducer, start, hint, untracked, ephemeral)


def read_schema(schema: Any) -> list[KeySchema]:
    """The state keys a schema declares, in declaration order (managed keys are not
    state keys: see `read_managed`). A root schema (`is_root_schema`) has the one key
    `ROOT`, typed by the schema itself."""
    if is_root_schema(schema):
        return [_key_of(ROOT, schema)]
    keys = []
    for name, hint in schema_hints(schema).items():
        if (name.startswith("__") and name != ROOT) or get_origin(hint) is typing.ClassVar:
            continue
        if managed_of(_unwrap_required(hint)) is not None:
            continue
        keys.append(_key_of(name, hint))
    return keys


def _is_optional(hint: Any) -> bool:
    """Whether `hint` admits None (`X | None`, `Optional[X]`, through `Annotated`)."""
    if hint is None or hint is type(None):
        return True
    origin = get_origin(hint)
    if origin is Annotated:
        return _is_optional(get_args(hint)[0])
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return any(_is_optional(arg) for arg in get_args(hint))
    bound = getattr(hint, "__bound__", None)
    if isinstance(hint, typing.TypeVar) and bound is not None:
        return _is_optional(bound)
    return False


def _required_marker(hint: Any) -> bool | None:
    """True for `Required[...]`, False for `NotRequired[...]` (also inside `Annotated`),
    None when neither marks the key."""
    origin = get_origin(hint)
    if origin is Required:
        return True
    if origin is NotRequired:
        return False
    if origin is Annotated:
        return _required_marker(get_args(hint)[0])
    return None


def _field_default(name: str, hint: Any, schema: Any) -> Any:
    """The default a key of a dataclass (or other annotated class) schema has in its JSON
    schema, as LangGraph derives it: `...` (required) unless the key is marked optional,
    has a dataclass default, or admits None."""
    marker = _required_marker(hint)
    if name in getattr(schema, "__optional_keys__", ()):
        return ... if marker else None
    if marker is not None:
        return ... if marker else None
    if dataclasses.is_dataclass(schema):
        for f in dataclasses.fields(schema):
            if f.name != name:
                continue
            if f.default is not dataclasses.MISSING and f.default is not ...:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return None if _is_optional(hint) else ...


def json_schema(schema: Any, key_types: dict[str, Any], name: str) -> dict[str, Any]:
    """The JSON schema of a graph's input or output `schema`, as LangGraph's
    `get_input_jsonschema` gives it: a Pydantic model's own, a TypedDict's from Pydantic,
    else (dataclasses, plain classes) a model named `name` of the schema's keys, each typed
    as `key_types` says (the type of the key's channel, which the graph's first schema
    naming the key decides)."""
    if is_model(schema):
        return schema.model_json_schema()
    if is_typeddict(schema):
        return TypeAdapter(schema).json_schema()
    if [key.name for key in read_schema(schema)] == [ROOT]:  # a root schema: its value's
        typ = key_types.get(ROOT, schema)
        if get_origin(typ) is Annotated:
            typ = get_args(typ)[0]
        return create_model_v2(name, root=(typ, None)).model_json_schema()
    fields = {
        key.name: (key_types.get(key.name, key.annotation),
                   _field_default(key.name, key_types.get(key.name, key.annotation), schema))
        for key in read_schema(schema)
    }
    return create_model_v2(name, field_definitions=fields).model_json_schema()


def context_json_schema(schema: Any) -> dict[str, Any] | None:
    """The JSON schema of a graph's context class (None without one), as LangGraph's
    `get_context_jsonschema` gives it."""
    if schema is None:
        return None
    if is_model(schema):
        return schema.model_json_schema()
    if is_typeddict(schema) or dataclasses.is_dataclass(schema):
        return TypeAdapter(schema).json_schema()
    raise ValueError(
        f"Invalid context schema type: {schema}. Must be a BaseModel, TypedDict or dataclass."
    )


def is_model(schema: Any) -> bool:
    return isinstance(schema, type) and issubclass(schema, BaseModel)


def make_coercer(schema: Any) -> Callable[[dict[str, Any]], Any] | None:
    """How a dict of state values becomes what a node of this schema receives (None: as is)."""
    if is_model(schema):
        return lambda values: schema(**values)
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        return lambda values: schema(**values)
    return None


def schema_defaults(schema: Any) -> dict[str, Any]:
    """Default values declared on a Pydantic or dataclass schema (nothing for TypedDict)."""
    if is_model(schema):
        return {
            name: field.get_default(call_default_factory=True)
            for name, field in schema.model_fields.items()
            if not field.is_required()
        }
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        out = {}
        for f in dataclasses.fields(schema):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out
    return {}


def input_as_pairs(value: Any) -> list[tuple[str, Any]] | None:
    """The `(key, value)` pairs of a graph input given as a dict or a schema instance."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, BaseModel):
        return [(name, getattr(value, name)) for name in type(value).model_fields]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    return None


_ANNOTATED_KEYS: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()
_NONE_DEFAULTS: weakref.WeakKeyDictionary[type, frozenset[str]] = weakref.WeakKeyDictionary()


def annotated_keys(cls: type) -> tuple[str, ...]:
    """The names annotated on `cls` and its bases, base first (LangGraph's test of an
    object being a state update, and the keys a `Command`'s update object writes).
    Worked out once per class."""
    try:
        return _ANNOTATED_KEYS[cls]
    except KeyError:
        pass
    except TypeError:  # not a class that can be weakly referenced: nothing annotated
        return ()
    keys: list[str] = []
    for base in reversed(cls.__mro__):
        ann = base.__dict__.get("__annotations__")
        if ann is None:  # Python 3.14's Pydantic models keep them behind a descriptor
            ann = getattr(base, "__annotations__", None)
        if ann is None or isinstance(ann, types.GetSetDescriptorType):
            continue
        keys.extend(ann)
    return _ANNOTATED_KEYS.setdefault(cls, tuple(dict.fromkeys(keys)))


def _none_defaults(cls: type[BaseModel]) -> frozenset[str]:
    """The fields of a Pydantic model whose default is None (once per class)."""
    found = _NONE_DEFAULTS.get(cls)
    if found is None:
        found = frozenset(name for name, field in cls.model_fields.items()
                          if field.default is None)
        _NONE_DEFAULTS[cls] = found
    return found


def object_update(obj: Any, keys: typing.Iterable[str]) -> list[tuple[str, Any]]:
    """The `(key, value)` writes of a state object (Pydantic model, dataclass, annotated
    class) returned as an update, for those of `keys` it has, as LangGraph writes them:
    every value, except a Pydantic field left at a None default (unless it was set). So a
    default mutated in place, or made by a default factory, is written too."""
    skip: typing.Container[str] = ()
    if isinstance(obj, BaseModel):
        skip = _none_defaults(type(obj)) - obj.model_fields_set
    pairs = []
    for key in keys:
        value = getattr(obj, key, MISSING)
        if value is MISSING or (value is None and key in skip):
            continue
        pairs.append((key, value))
    return pairs
