"""Many-branch rows of `ferrograph.models.ChatOpenAI` (`benches/compare.py` builds and times them).

    python benches/compare.py --only openai_rust_1,openai_rust_200 --out /tmp/m.md

`openai_rust_{n}`: START -> `n` parallel nodes, each streaming a poem from its own chat model
over HTTP, `stream(stream_mode="messages")` keeping every token: ferrograph with
`ferrograph.models.ChatOpenAI` (streams read in Rust), langgraph with
`langchain_openai.ChatOpenAI`. The OpenAI-compatible server is the embedded one, but in a
process of its own (`python -m ferrograph.local_openai`), so it neither shares the client's
GIL nor sends a token a write: what is timed is the client side. The target: at 200 branches,
ferrograph's cost per token within 1.5x of its cost at one branch.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from compare import IMPLS, Branches, Scenario, consume_messages, lib

PROMPT = "Write a short poem about cats"
NAMES = ("openai_rust_1", "openai_rust_200")


@contextlib.contextmanager
def model_server() -> Iterator[str]:
    """The embedded OpenAI-compatible server in a subprocess; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "ferrograph.local_openai"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        if not url.startswith("http://"):
            raise RuntimeError(f"the local OpenAI server did not start (said {url!r})")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _graph(impl: str, n: int, base_url: str) -> Any:
    if impl == "ferrograph":
        from ferrograph.models import ChatOpenAI
    else:
        from langchain_openai import ChatOpenAI
    L = lib(impl)
    b = L.StateGraph(Branches)
    for i in range(n):
        model = ChatOpenAI(model="ferrograph-local", base_url=base_url, api_key="local")

        def node(state: Branches, model: Any = model) -> dict[str, Any]:
            return {"out": [model.invoke([{"role": "user", "content": PROMPT}]).content]}

        b.add_node(f"branch_{i}", node)
        b.add_edge(L.START, f"branch_{i}")
    return b.compile()


def scenarios(base_url: str, names: list[str]) -> list[Scenario]:
    from ferrograph.local_openai import poem_about, tokenize

    poem = poem_about("cats")
    out = []
    for name in names:
        n = int(name.rsplit("_", 1)[1])
        graphs = {k: _graph(k, n, base_url) for k in IMPLS}
        expected = {f"branch_{i}": poem for i in range(n)}
        out.append(Scenario(
            name, f"{n} branches streaming a poem over HTTP each, keep all: ferrograph with "
            "ferrograph.models.ChatOpenAI, langgraph with langchain_openai.ChatOpenAI "
            "(the server in its own process)",
            {k: (lambda g=g, k=k: consume_messages(g, {"out": []}, None, k))
             for k, g in graphs.items()},
            lambda r, e=expected: r == e, per=n * len(tokenize(poem)), unit="token"))
        print(f"  {name}: built", file=sys.stderr)
    return out


def target_rows(med: dict[str, dict[str, float]], per: dict[str, int]
                ) -> list[tuple[str, str, bool]]:
    """Per-token cost at 200 branches against one branch (ferrograph)."""
    one, many = NAMES
    if not all(name in med and "ferrograph" in med[name] for name in NAMES):
        return []
    ratio = (med[many]["ferrograph"] / per[many]) / (med[one]["ferrograph"] / per[one])
    return [(f"`{many}` per token within 1.5× of `{one}`", f"{ratio:.2f}×", ratio <= 1.5)]
