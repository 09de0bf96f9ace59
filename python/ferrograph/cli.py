"""The `ferrograph` command: `demo` (the joke/poem graph from the how-to, streaming chosen
nodes' tokens live) and `serve` (the LangGraph Server API on ferrograph, see `server/`)."""

from __future__ import annotations

import argparse
import contextlib
import operator
import os
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Annotated, Any, TextIO, TypedDict

from ferrograph.graph import START, StateGraph


class DemoState(TypedDict):
    topic: str
    joke: str
    poem: str
    # The extra writers' poems (`--branches` above 2), by node name. A merging reducer,
    # because these writers all finish in the same step.
    poems: Annotated[dict[str, str], operator.or_]


def writer_names(branches: int) -> list[str]:
    """The writer nodes: `write_joke`, `write_poem`, then `write_poem_2`, `write_poem_3`, ...
    (a single branch is just `write_poem`, the default node)."""
    if branches <= 1:
        return ["write_poem"]
    return ["write_joke", "write_poem", *(f"write_poem_{i}" for i in range(2, branches))]


def build_graph(model: Any, branches: int = 2, graph_class: Any = StateGraph,
                start: str = START) -> Any:
    """The how-to's graph: writers that all start at START, each calling `model.invoke`.

    `graph_class`/`start` may be LangGraph's, so the same graph runs on both engines."""

    def write_joke(state: DemoState) -> dict[str, Any]:
        topic = state["topic"]
        joke = model.invoke([{"role": "user", "content": f"Write a joke about {topic}"}])
        return {"joke": joke.content}

    def write_poem(state: DemoState) -> dict[str, Any]:
        topic = state["topic"]
        poem = model.invoke([{"role": "user", "content": f"Write a short poem about {topic}"}])
        return {"poem": poem.content}

    def extra_writer(name: str) -> Any:
        # Each extra writer asks about "<topic> (<n>)", so every branch's poem is different.
        def write(state: DemoState) -> dict[str, Any]:
            topic = f"{state['topic']} ({name.rsplit('_', 1)[-1]})"
            poem = model.invoke([{"role": "user", "content": f"Write a short poem about {topic}"}])
            return {"poems": {name: poem.content}}

        return write

    builder = graph_class(DemoState)
    for name in writer_names(branches):
        builder.add_node(name, {"write_joke": write_joke, "write_poem": write_poem}.get(name)
                         or extra_writer(name))
        builder.add_edge(start, name)
    return builder.compile()


def stream_tokens(graph: Any, topic: str, nodes: list[str] | None,
                  native_filter: bool = True) -> Iterator[tuple[str, str]]:
    """`(node, token)` for each token the chosen `nodes` stream (all nodes if None).

    With `native_filter` the graph filters (ferrograph's `nodes=`); without it the filter is
    applied here on `metadata["langgraph_node"]`, which is what LangGraph needs."""
    kwargs = {"nodes": nodes} if native_filter and nodes is not None else {}
    for chunk, metadata in graph.stream({"topic": topic}, stream_mode="messages", **kwargs):
        node = metadata["langgraph_node"]
        if chunk.content and (nodes is None or node in nodes):
            yield node, chunk.content


@contextlib.contextmanager
def chat_model(args: argparse.Namespace) -> Iterator[Any]:
    """OpenAI when `OPENAI_API_KEY` is set, otherwise the embedded local server."""
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        print(f"(using OpenAI, model {args.model})", file=sys.stderr)
        yield ChatOpenAI(model=args.model)
        return
    from ferrograph.local_openai import LocalOpenAIServer

    with LocalOpenAIServer(token_delay=args.token_delay) as server:
        print(f"(no OPENAI_API_KEY: using the embedded server at {server.base_url})",
              file=sys.stderr)
        yield server.chat_model()


class Lanes:
    """A terminal line per node, redrawn in place (ANSI escapes) as its tokens arrive."""

    def __init__(self, names: list[str], out: TextIO) -> None:
        self.names = names
        self.text = dict.fromkeys(names, "")
        self.out = out
        self.label_width = max(len(n) for n in names)
        self.width = shutil.get_terminal_size().columns
        out.write("\n" * len(names))  # room for the lanes; the cursor rests below them

    def add(self, node: str, token: str) -> None:
        self.text[node] += token
        up = len(self.names) - self.names.index(node)
        label = f"{node:>{self.label_width}} │ "
        room = max(self.width - len(label) - 1, 10)
        shown = self.text[node].replace("\n", " / ")[-room:]  # the newest text fits the line
        # up to the lane, clear it, draw, back down to the resting line
        self.out.write(f"\x1b[{up}A\r\x1b[2K{label}{shown}\x1b[{up}B\r")
        self.out.flush()

    def close(self) -> None:
        pass


class Prefixed:
    """Each node's text as whole lines prefixed with `[node]`, for pipes and logs."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.partial: dict[str, str] = {}

    def add(self, node: str, token: str) -> None:
        *lines, self.partial[node] = (self.partial.get(node, "") + token).split("\n")
        for line in lines:
            self.out.write(f"[{node}] {line}\n" if line else f"[{node}]\n")
        if lines:
            self.out.flush()

    def close(self) -> None:
        for node, rest in self.partial.items():
            if rest:
                self.out.write(f"[{node}] {rest}\n")
        self.out.flush()


def lanes_for(names: list[str], out: TextIO) -> Lanes | Prefixed:
    """Live lanes on a terminal tall enough for them, prefixed lines otherwise."""
    if out.isatty() and len(names) < shutil.get_terminal_size().lines:
        return Lanes(names, out)
    return Prefixed(out)


def demo(args: argparse.Namespace) -> int:
    names = writer_names(args.branches)
    if not args.all and args.node not in names:
        print(f"--node {args.node!r} is not one of the graph's nodes: {', '.join(names)}",
              file=sys.stderr)
        return 2
    out = sys.stdout
    tokens = 0
    with chat_model(args) as model:
        graph = build_graph(model, args.branches)
        started = time.perf_counter()
        first_token = None
        if args.all:
            lanes = lanes_for(names, out)
            for node, token in stream_tokens(graph, args.topic, None):
                first_token = first_token or time.perf_counter()
                tokens += 1
                lanes.add(node, token)
            lanes.close()
        else:
            for _node, token in stream_tokens(graph, args.topic, [args.node]):
                first_token = first_token or time.perf_counter()
                tokens += 1
                out.write(token)
                out.flush()
            out.write("\n")
        elapsed = time.perf_counter() - started
    ttft = f", first after {(first_token - started) * 1000:.0f} ms" if first_token else ""
    which = f"{len(names)} nodes" if args.all else args.node
    print(f"({tokens} tokens streamed from {which} in {elapsed:.2f} s{ttft})", file=sys.stderr)
    return 0


def _at_least(low: float, kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ferrograph", description="ferrograph command line")
    sub = top.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "demo", help="stream a node's tokens from the joke/poem graph",
        description="Runs the how-to's joke/poem graph and streams the chosen node's tokens "
                    "live. Uses OpenAI when OPENAI_API_KEY is set, otherwise an embedded "
                    "local OpenAI-compatible server.")
    d.add_argument("--node", default="write_poem", help="the node to stream (default: %(default)s)")
    d.add_argument("--topic", default="cats", help="what to write about (default: %(default)s)")
    d.add_argument("--branches", type=_at_least(1, int), default=2, metavar="N",
                   help="parallel writer nodes: write_joke, write_poem, write_poem_2, ... "
                        "(default: %(default)s)")
    d.add_argument("--all", action="store_true",
                   help="stream every branch, each in its own lane")
    d.add_argument("--token-delay", type=_at_least(0, float), default=0.02, metavar="SECONDS",
                   help="pause between tokens of the embedded server (default: %(default)s)")
    d.add_argument("--model", default="gpt-4o-mini",
                   help="OpenAI model when OPENAI_API_KEY is set (default: %(default)s)")
    s = sub.add_parser(
        "serve", help="serve a langgraph.json's graphs with the LangGraph Server API",
        description="Serves the graphs of a langgraph.json (as `langgraph dev` does) with the "
                    "LangGraph Server API, on ferrograph's engine; langgraph-sdk and "
                    "RemoteGraph talk to it unchanged. Needs the `server` extra.")
    s.add_argument("--config", default="langgraph.json",
                   help="the langgraph.json to serve (default: %(default)s)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    s.add_argument("--port", type=int, default=2024, help="port (default: %(default)s)")
    s.add_argument("--db", default=":memory:", metavar="PATH|:memory:",
                   help="SQLite file for assistants, threads, runs and checkpoints "
                        "(default: %(default)s)")
    s.add_argument("--database-uri", default=os.environ.get("DATABASE_URI") or None,
                   metavar="postgres://...",
                   help="keep them in PostgreSQL instead (default: $DATABASE_URI, as "
                        "LangGraph's server; needs the `postgres` extra)")
    s.add_argument("--redis-uri", default=os.environ.get("REDIS_URI") or None,
                   metavar="redis://...",
                   help="with --database-uri: one of several instances sharing that database "
                        "and this Redis (run queue, event relay, cancellation); default: "
                        "$REDIS_URI, as LangGraph's server")
    s.add_argument("--workers", type=_at_least(1, int), default=1, metavar="N",
                   help="with --redis-uri: workers of this instance (default: "
                        "%(default)s): it runs up to N x --jobs-per-worker runs at once, "
                        "all on its event loop (for more cores, run more instances)")
    s.add_argument("--jobs-per-worker", type=_at_least(1, int),
                   default=int(os.environ.get("N_JOBS_PER_WORKER") or 10), metavar="M",
                   help="runs each worker runs at once (default: $N_JOBS_PER_WORKER, else "
                        "10, as LangGraph's server)")
    s.add_argument("--demo", action="store_true",
                   help="serve the demo's joke/poem graph (as `seed`) instead of a "
                        "langgraph.json: OpenAI when OPENAI_API_KEY is set, otherwise the "
                        "embedded local server")
    s.add_argument("--token-delay", type=_at_least(0, float), default=0.02, metavar="SECONDS",
                   help="with --demo: pause between tokens of the embedded server "
                        "(default: %(default)s)")
    s.add_argument("--model", default="gpt-4o-mini",
                   help="with --demo: OpenAI model when OPENAI_API_KEY is set "
                        "(default: %(default)s)")
    return top


def serve(args: argparse.Namespace) -> int:
    from ferrograph._extras import missing_extra

    try:
        from ferrograph.server import DatabaseError, GraphLoadError
        from ferrograph.server import serve as run_server
        from ferrograph.server.database import is_postgres_uri, redacted
    except ImportError as exc:
        raise missing_extra("server", "ferrograph serve", exc) from exc
    db = args.db
    if args.database_uri:
        if not is_postgres_uri(args.database_uri):
            print(f"ferrograph serve: DATABASE_URI {redacted(args.database_uri)!r} is not a "
                  "postgres:// or postgresql:// URI (a SQLite file goes in --db)",
                  file=sys.stderr)
            return 2
        db = args.database_uri
    if args.redis_uri and not args.database_uri:
        print("ferrograph serve: REDIS_URI needs DATABASE_URI (several instances share one "
              "PostgreSQL database)", file=sys.stderr)
        return 2
    shared = {"redis_uri": args.redis_uri, "jobs": args.workers * args.jobs_per_worker}
    try:
        if args.demo:
            from ferrograph.server.graphs import ServedGraph

            with chat_model(args) as model:
                graph = build_graph(model)
                run_server("the demo", host=args.host, port=args.port, db=db,
                           graphs={"seed": ServedGraph("seed", "ferrograph serve --demo",
                                                       graph)}, **shared)
        else:
            run_server(args.config, host=args.host, port=args.port, db=db, **shared)
    except (GraphLoadError, DatabaseError) as e:
        print(f"ferrograph serve: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `ferrograph` console script."""
    args = parser().parse_args(argv)
    try:
        return serve(args) if args.command == "serve" else demo(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly, like other CLI tools
        # stdout onto /dev/null, so the interpreter's flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
