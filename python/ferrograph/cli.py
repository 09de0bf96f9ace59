"""`ferrograph demo`: the seed how-to's joke/poem graph, streaming one node's tokens live."""

from __future__ import annotations

import argparse
import contextlib
import operator
import os
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

from ferrograph.graph import START, StateGraph


class DemoState(TypedDict):
    topic: str
    joke: str
    poem: str
    poems: Annotated[dict, operator.or_]
    """Poems of the extra writers (`--branches` above 2), by node name."""


def writer_names(branches: int) -> list[str]:
    """`write_joke`, `write_poem`, then `write_poem_2`, `write_poem_3`, ..."""
    names = ["write_joke", "write_poem"][:max(branches, 1)]
    names += [f"write_poem_{i}" for i in range(2, branches)]
    return names


def build_graph(model: Any, branches: int = 2) -> Any:
    """The seed's graph: writers that all start at START and each call `model.invoke`."""

    def write_joke(state: DemoState):
        topic = state["topic"]
        joke = model.invoke([{"role": "user", "content": f"Write a joke about {topic}"}])
        return {"joke": joke.content}

    def write_poem(state: DemoState):
        topic = state["topic"]
        poem = model.invoke([{"role": "user", "content": f"Write a short poem about {topic}"}])
        return {"poem": poem.content}

    def extra_writer(name: str):
        def write(state: DemoState):
            topic = f"{state['topic']} ({name.rsplit('_', 1)[-1]})"
            poem = model.invoke([{"role": "user", "content": f"Write a short poem about {topic}"}])
            return {"poems": {name: poem.content}}
        return write

    builder = StateGraph(DemoState)
    for name in writer_names(branches):
        fn = {"write_joke": write_joke, "write_poem": write_poem}.get(name) or extra_writer(name)
        builder.add_node(name, fn)
        builder.add_edge(START, name)
    return builder.compile()


@contextlib.contextmanager
def chat_model(args: argparse.Namespace) -> Iterator[Any]:
    """OpenAI when `OPENAI_API_KEY` is set, otherwise the embedded local server."""
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        yield ChatOpenAI(model=args.model)
        return
    from ferrograph.local_openai import LocalOpenAIServer

    with LocalOpenAIServer(token_delay=args.token_delay) as server:
        print(f"(no OPENAI_API_KEY: using the embedded server at {server.base_url})",
              file=sys.stderr)
        yield server.chat_model()


class Lanes:
    """Each node's text on its own terminal line, redrawn in place as tokens arrive."""

    def __init__(self, names: list[str], out: Any) -> None:
        self.names = names
        self.text = {n: "" for n in names}
        self.out = out
        self.width = shutil.get_terminal_size().columns
        out.write("\n" * len(names))

    def add(self, node: str, token: str) -> None:
        self.text[node] += token
        row = len(self.names) - self.names.index(node)
        label = f"{node:>14} │ "
        room = max(self.width - len(label) - 1, 10)
        shown = self.text[node].replace("\n", " ⏎ ")[-room:]
        self.out.write(f"\x1b[{row}A\r\x1b[2K{label}{shown}\x1b[{row}B\r")
        self.out.flush()


class LinePrefixer:
    """Each node's text as whole lines prefixed with `[node]` (for pipes and logs)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.partial: dict[str, str] = {}

    def add(self, node: str, token: str) -> None:
        text = self.partial.get(node, "") + token
        *lines, rest = text.split("\n")
        for line in lines:
            self.out.write(f"[{node}] {line}\n")
        self.partial[node] = rest

    def close(self) -> None:
        for node, rest in self.partial.items():
            if rest:
                self.out.write(f"[{node}] {rest}\n")
        self.out.flush()


def demo(args: argparse.Namespace) -> int:
    names = writer_names(args.branches)
    if not args.all and args.node not in names:
        print(f"--node {args.node!r} is not one of the graph's nodes: {', '.join(names)}",
              file=sys.stderr)
        return 2
    out = sys.stdout
    tokens = 0
    first_token_at = None
    with chat_model(args) as model:
        graph = build_graph(model, args.branches)
        start = time.perf_counter()
        stream = graph.stream({"topic": args.topic}, stream_mode="messages",
                              nodes=None if args.all else [args.node])
        if args.all:
            lanes: Any = Lanes(names, out) if out.isatty() else LinePrefixer(out)
            for chunk, metadata in stream:
                if chunk.content:
                    first_token_at = first_token_at or time.perf_counter()
                    tokens += 1
                    lanes.add(metadata["langgraph_node"], chunk.content)
            if isinstance(lanes, LinePrefixer):
                lanes.close()
        else:
            for chunk, _metadata in stream:
                if chunk.content:
                    first_token_at = first_token_at or time.perf_counter()
                    tokens += 1
                    out.write(chunk.content)
                    out.flush()
            out.write("\n")
    elapsed = time.perf_counter() - start
    ttft = f", first token after {(first_token_at - start) * 1000:.0f} ms" if first_token_at else ""
    which = "all nodes" if args.all else args.node
    print(f"({tokens} tokens from {which} in {elapsed:.2f} s{ttft})", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ferrograph", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="stream one node's tokens from the joke/poem graph")
    d.add_argument("--node", default="write_poem", help="the node to stream (default: %(default)s)")
    d.add_argument("--topic", default="cats", help="what to write about (default: %(default)s)")
    d.add_argument("--branches", type=int, default=2,
                   help="number of parallel writer nodes (default: %(default)s)")
    d.add_argument("--all", action="store_true", help="stream every branch, each in its lane")
    d.add_argument("--token-delay", type=float, default=0.02,
                   help="seconds between tokens of the embedded server (default: %(default)s)")
    d.add_argument("--model", default="gpt-4o-mini",
                   help="OpenAI model when OPENAI_API_KEY is set (default: %(default)s)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.branches < 1:
        print("--branches must be at least 1", file=sys.stderr)
        return 2
    try:
        return demo(args)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly, like other CLI tools
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
