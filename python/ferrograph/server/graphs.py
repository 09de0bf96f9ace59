"""The graphs a server serves, read from `langgraph.json` as `langgraph dev` reads it:
`graphs` (`./file.py:variable` or `module.path:variable`: a compiled graph, or a factory
called with the run's config), `env` (a mapping, or a `.env` file's path), `dependencies`
(directories put on `sys.path`) and `auth` (see `auth`). A graph that fails to load stops the
server at start, with an error naming it."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import json
import logging
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
"""The namespace of the system assistants' uuid5 ids (LangGraph's, so ids match its)."""


class GraphLoadError(RuntimeError):
    """A `langgraph.json` or one of its graphs cannot be loaded."""


@dataclass
class ServedGraph:
    """One entry of `graphs`: its id, where it comes from, and what that names."""

    graph_id: str
    target: str
    value: Any
    """A compiled graph, or a factory that makes one from a run's config."""

    @property
    def assistant_id(self) -> str:
        """The id of the graph's system assistant, as LangGraph derives it."""
        return str(uuid.uuid5(NAMESPACE_GRAPH, self.graph_id))

    @property
    def is_factory(self) -> bool:
        return not hasattr(self.value, "astream")

    async def build(self, config: dict[str, Any], checkpointer: Any) -> Any:
        """The graph a run (or a state read) uses: the compiled graph, or what the factory
        makes of `config`, as a copy bound to the server's `checkpointer` (the user's graph
        object itself is never changed)."""
        graph = self.value
        if self.is_factory:
            takes_config = bool(inspect.signature(graph).parameters)
            graph = graph(config) if takes_config else graph()
            if inspect.isawaitable(graph):
                graph = await graph
            graph = on_ferrograph(self.graph_id, self.target, graph)
            if not hasattr(graph, "astream"):
                raise GraphLoadError(f"graph {self.graph_id!r}: the factory {self.target} "
                                     f"returned {type(graph).__name__}, not a compiled graph")
        bound = copy.copy(graph)
        if getattr(bound, "name", None) == "LangGraph":  # as LangGraph's server names them
            bound.name = self.graph_id
        if checkpointer is not None:
            bound.checkpointer = checkpointer
        return bound


@dataclass
class ServerConfig:
    path: Path | None
    graphs: dict[str, ServedGraph]
    auth: Any = None
    """The `auth` key's custom auth (`server.auth.ServerAuth`), None without one."""


def load_config(path: str | os.PathLike[str] | None) -> ServerConfig:
    """Reads `langgraph.json` (`path`), applies its `env` and `dependencies`, and imports
    every graph."""
    if path is None:
        raise GraphLoadError("no config: pass --config PATH (a langgraph.json)")
    config_path = Path(path).resolve()
    try:
        raw = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise GraphLoadError(f"config file not found: {config_path}") from None
    except json.JSONDecodeError as e:
        raise GraphLoadError(f"{config_path} is not valid JSON: {e}") from None
    base = config_path.parent
    _apply_env(raw.get("env"), base)
    for dep in raw.get("dependencies") or []:
        # Paths are directories put on sys.path; package names (pip requirements) are for
        # `langgraph build`, and are expected to be installed already.
        if dep.startswith(".") or dep.startswith("/"):
            where = str((base / dep).resolve())
            if where not in sys.path:
                sys.path.insert(0, where)
    graphs_raw = raw.get("graphs")
    if not isinstance(graphs_raw, dict) or not graphs_raw:
        raise GraphLoadError(f"{config_path}: 'graphs' must map graph ids to "
                             "'./file.py:variable' or 'module:variable'")
    graphs = {}
    for graph_id, target in graphs_raw.items():
        if isinstance(target, dict):  # {"path": ..., "description": ...}
            target = target.get("path", "")
        graphs[graph_id] = ServedGraph(graph_id, target, _import_graph(graph_id, target, base))
    from ferrograph.server.auth import load_auth

    return ServerConfig(config_path, graphs, load_auth(raw.get("auth"), base))


def _apply_env(env: Any, base: Path) -> None:
    if env is None:
        return
    if isinstance(env, str):
        env_path = base / env
        if not env_path.exists():
            raise GraphLoadError(f"env file not found: {env_path}")
        for line in env_path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                os.environ.setdefault(key.strip(), value.strip().strip("'\""))
        return
    for key, value in dict(env).items():
        os.environ.setdefault(str(key), str(value))


def import_target(target: str, base: Path, what: str) -> Any:
    """The object `target` (`./file.py:variable` or `module.path:variable`, a file relative
    to `base`) names; `what` names it in errors ("graph 'agent'", "auth")."""
    module_ref, sep, attr = target.rpartition(":")
    if not sep or not module_ref or not attr:
        raise GraphLoadError(f"{what}: {target!r} is not "
                             "'./file.py:variable' or 'module:variable'")
    try:
        if module_ref.endswith(".py") or "/" in module_ref:
            file = (base / module_ref).resolve()
            if not file.exists():
                raise GraphLoadError(f"{what}: file not found: {file}")
            name = f"ferrograph_served_{file.stem}_{abs(hash(str(file))):x}"
            module = sys.modules.get(name)
            if module is None:
                spec = importlib.util.spec_from_file_location(name, file)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            module = importlib.import_module(module_ref)
    except GraphLoadError:
        raise
    except Exception as e:
        raise GraphLoadError(f"{what}: importing {module_ref} failed: "
                             f"{type(e).__name__}: {e}") from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise GraphLoadError(f"{what}: {module_ref} has no {attr!r}") from None


def on_ferrograph(graph_id: str, target: str, value: Any) -> Any:
    """`value` to run on ferrograph's engine: a graph LangGraph built (compiled, or a
    `StateGraph` builder, which LangGraph's server compiles) rebuilt by `ferrograph.adapt`;
    anything else as it is. What `adapt` cannot translate stops the server, naming it."""
    if not type(value).__module__.startswith("langgraph."):
        return value
    from ferrograph.graph import StateGraph
    from ferrograph.graph.adapt import UntranslatableGraphError, adapt

    try:
        adapted = adapt(value)
    except (UntranslatableGraphError, TypeError) as e:
        raise GraphLoadError(f"graph {graph_id!r}: {target} is a LangGraph "
                             f"{type(value).__name__} ferrograph cannot run: {e}") from None
    return adapted.compile() if isinstance(adapted, StateGraph) else adapted


def _import_graph(graph_id: str, target: str, base: Path) -> Any:
    value = import_target(target, base, f"graph {graph_id!r}")
    if not callable(value) or hasattr(value, "astream"):  # a graph, not a factory
        value = on_ferrograph(graph_id, target, value)
    if not hasattr(value, "astream") and not callable(value):
        raise GraphLoadError(f"graph {graph_id!r}: {target} is a {type(value).__name__}, "
                             "not a compiled graph nor a factory of one")
    if hasattr(value, "astream") and not type(value).__module__.startswith("ferrograph."):
        # served as it is (it has the same API), but not on ferrograph's engine
        logging.getLogger("ferrograph.server").warning(
            "graph %r (%s) is a %s.%s, not ferrograph's: it runs on its own engine. Import "
            "StateGraph from ferrograph.graph to run it on ferrograph's.", graph_id, target,
            type(value).__module__, type(value).__name__)
    return value
