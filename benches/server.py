"""Server benchmark: `ferrograph serve` beside `langgraph dev`, the same graphs and the same client.

    python benches/server.py                 # full run, writes benches/SERVER.md
    python benches/server.py --quick --out /tmp/s.md

Both servers serve `benches/server_graphs` (fake streaming models, so no model server is in the
measurement) from a temporary copy, each a subprocess on a free 127.0.0.1 port, both up for the
whole run; repeats alternate between them. The client is a few lines of asyncio over a raw
socket (HTTP/1.1, chunked body, SSE lines counted as they arrive), cheap and the same for both,
so the servers are what differs. Every run is a stateless `POST /runs/stream` with
`stream_mode="messages-tuple"`. Rows:

- `srv_tokens_1`: one stream of a 2,000-word reply: tokens per second through one SSE stream.
- `srv_ttft_idle`: time to the first token event of one 100-word stream on an idle server,
  beside the engine's own time to the first token (`graph.astream(..., stream_mode="messages")`
  in this process, the same graph, each sample taken from idle as the servers' are, after
  `langgraph dev`'s): the server's added latency; 21 samples each, medians.
  (`langgraph dev`'s in-memory queue looks for new runs every 0.5 s while idle,
  `langgraph_runtime_inmem.ops.Runs.next`: most of its time to first token is that wait.)
- `srv_200`: 200 concurrent streams of 100 words: total tokens per second, p50/p99 time to
  first token, and the server's peak RSS (VmHWM over the whole run, summed over its processes).
  `langgraph dev` gets `N_JOBS_PER_WORKER=200` so it runs all 200 at once too (its default: 10).
- `srv_seed_poem`: the seed graph (joke and poem, 100 words each), keeping the poem: on
  ferrograph with the server-side filter (`config.configurable.ferrograph_nodes`) and without it
  (every token sent, the client drops the joke's), on `langgraph dev` without (it has no filter).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repo's tests package: its server fixtures

from tests.server_support import ServerProcess, free_port  # noqa: E402

GRAPHS = HERE / "server_graphs"
SERVERS = ("ferrograph", "langgraph")
TOKEN_EVENT = b"event: messages"


@dataclass
class Stream:
    """What the client saw of one streamed run."""

    first_token: float | None  # seconds from sending the request
    tokens: int  # `messages` events
    total: float  # seconds to the end of the body


async def stream_run(port: int, body: dict[str, Any]) -> Stream:
    """POST /runs/stream and read the SSE body to its end, counting token events."""
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    writer.write(b"POST /runs/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"server answered {head.splitlines()[0]!r}: {await reader.read()!r}")
    chunked = b"transfer-encoding: chunked" in head.lower()
    first: float | None = None
    tokens = 0
    pending = b""
    while True:
        if chunked:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                break
            data = (await reader.readexactly(size + 2))[:-2]
        else:
            data = await reader.read(65536)
            if not data:
                break
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.rstrip(b"\r") == TOKEN_EVENT:
                tokens += 1
                if first is None:
                    first = time.perf_counter() - start
    total = time.perf_counter() - start
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Stream(first, tokens, total)


def run_body(graph: str, words: int, nodes: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"assistant_id": graph, "input": {"words": words},
                            "stream_mode": ["messages-tuple"]}
    if nodes is not None:
        body["config"] = {"configurable": {"ferrograph_nodes": nodes}}
    return body


def peak_rss_mib(pid: int) -> float:
    """VmHWM of the server's process and its children, in MiB."""
    pids = [pid]
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            pids.append(int(child))
    total_kib = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


@contextlib.contextmanager
def servers(where: Path, jobs: int) -> Iterator[dict[str, ServerProcess]]:
    """Both servers over one copy of the bench graphs."""
    graphs = where / "graphs"
    shutil.copytree(GRAPHS, graphs, ignore=shutil.ignore_patterns("__pycache__"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    base.update(LANGGRAPH_CLI_NO_ANALYTICS="1", LANGGRAPH_NO_VERSION_CHECK="true",
                LANGSMITH_TRACING="false", PYTHONUNBUFFERED="1")
    cli = Path(sys.executable).with_name("langgraph")
    argv = {
        "ferrograph": lambda port: [sys.executable, "-m", "ferrograph", "serve", "--config",
                                    "langgraph.json", "--port", str(port), "--db", ":memory:"],
        "langgraph": lambda port: [str(cli), "dev", "--no-browser", "--no-reload", "--port",
                                   str(port), "--config", "langgraph.json"],
    }
    env = {"ferrograph": dict(base, SERVER_GRAPH_LIB="ferrograph"),
           "langgraph": dict(base, SERVER_GRAPH_LIB="langgraph", N_JOBS_PER_WORKER=str(jobs),
                             LOG_LEVEL="WARNING")}
    started: dict[str, ServerProcess] = {}
    try:
        for name in SERVERS:
            port = free_port()
            started[name] = ServerProcess(argv[name](port), graphs, env[name], port,
                                          where / f"{name}.log")
        yield started
    finally:
        for server in started.values():
            server.stop()


def expected_tokens(words: int) -> int:
    """Token events of one `words`-word reply on either server (checked, not assumed)."""
    return 2 * words - 1


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def quantile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def engine_first_token(words: int) -> float:
    """Seconds from `graph.astream` (what the server runs) to the first token, the engine
    alone, in this process."""
    os.environ["SERVER_GRAPH_LIB"] = "ferrograph"
    sys.path.insert(0, str(GRAPHS))
    import graphs as bench_graphs  # noqa: PLC0415 - the bench graphs, on ferrograph

    async def first() -> float:
        start = time.perf_counter()
        stream = bench_graphs.speak.astream({"words": words}, stream_mode="messages")
        await anext(stream)
        took = time.perf_counter() - start
        await stream.aclose()
        return took

    return asyncio.run(first())


class Bench:
    def __init__(self, started: dict[str, ServerProcess], repeats: int) -> None:
        self.ports = {name: server.port for name, server in started.items()}
        self.pids = {name: server.proc.pid for name, server in started.items()}
        self.repeats = repeats
        self.rows: list[str] = []

    def alternate(self, make: Any) -> dict[str, list[Any]]:
        """`make(server)` a coroutine; run it `repeats` times per server, alternating, after
        one untimed run each (its check, and the warm-up every server gets)."""
        for name in self.ports:
            asyncio.run(make(name))
        out: dict[str, list[Any]] = {name: [] for name in self.ports}
        for _ in range(self.repeats):
            for name in self.ports:
                out[name].append(asyncio.run(make(name)))
        return out

    def check(self, name: str, got: Stream, want: int) -> None:
        if got.tokens != want:
            raise RuntimeError(f"{name}: {got.tokens} token events, expected {want}")

    def speak_runs(self, words: int) -> dict[str, list[Stream]]:
        """One `words`-word stream at a time, `repeats` per server, each checked."""
        want = expected_tokens(words)

        async def one(name: str) -> Stream:
            got = await stream_run(self.ports[name], run_body("speak", words))
            self.check(name, got, want)
            return got

        return self.alternate(one)

    def tokens_one(self, words: int) -> None:
        want = expected_tokens(words)
        runs = self.speak_runs(words)
        rate = {n: want / statistics.median(s.total for s in r) for n, r in runs.items()}
        self.rows.append(
            f"| `srv_tokens_1` one stream, {words} words ({want} token events) | "
            f"{rate['ferrograph']:,.0f} tokens/s | {rate['langgraph']:,.0f} tokens/s | "
            f"{rate['ferrograph'] / rate['langgraph']:.1f}x |")

    def ttft_idle(self, words: int, samples: int = 21) -> None:
        """First tokens from idle: each sample (each server's, then the engine's alone in
        this process) comes after the others' (`langgraph dev`'s takes about a second), so
        all three start from the same idle machine: threads asleep, caches cold. The engine
        back to back (hot) is shown beside it. More samples than the other rows: a few
        milliseconds each, and the target's margin is a fraction of one."""
        want = expected_tokens(words)
        firsts: dict[str, list[float]] = {name: [] for name in self.ports}
        engine: list[float] = []
        for sample in range(samples + 1):  # the first, untimed: its check and warm-up
            for name in self.ports:
                got = asyncio.run(stream_run(self.ports[name], run_body("speak", words)))
                self.check(name, got, want)
                if sample:
                    firsts[name].append(got.first_token)
            took = engine_first_token(words)
            if sample:
                engine.append(took)
        hot = [engine_first_token(words) for _ in range(samples + 1)][1:]
        first = {n: median_ms(f) for n, f in firsts.items()}
        self.rows.append(
            f"| `srv_ttft_idle` first token, one {words}-word stream, idle server "
            f"(engine alone, from idle as the servers: {median_ms(engine):.2f} ms; back to "
            f"back: {median_ms(hot):.2f} ms) | {first['ferrograph']:.2f} ms "
            f"(+{first['ferrograph'] - median_ms(engine):.2f} ms over the engine) | "
            f"{first['langgraph']:.2f} ms | {first['ferrograph'] / first['langgraph']:.2f} |")

    def concurrent(self, streams: int, words: int) -> None:
        want = expected_tokens(words)

        async def many(name: str) -> tuple[float, list[Stream]]:
            start = time.perf_counter()
            got = await asyncio.gather(*(stream_run(self.ports[name], run_body("speak", words))
                                         for _ in range(streams)))
            took = time.perf_counter() - start
            for g in got:
                self.check(name, g, want)
            return took, got

        runs = self.alternate(many)
        cells = {}
        rates = {}
        for name, repeats in runs.items():
            rates[name] = streams * want / statistics.median(t for t, _ in repeats)
            firsts = [s.first_token for _, got in repeats for s in got]
            cells[name] = (f"{rates[name]:,.0f} tokens/s; first token p50 "
                           f"{quantile_ms(firsts, 0.5):.0f} ms, p99 {quantile_ms(firsts, 0.99):.0f}"
                           f" ms; peak RSS {peak_rss_mib(self.pids[name]):.0f} MiB")
        self.rows.append(
            f"| `srv_{streams}` {streams} concurrent streams, {words} words each | "
            f"{cells['ferrograph']} | {cells['langgraph']} | "
            f"{rates['ferrograph'] / rates['langgraph']:.1f}x throughput |")

    def seed_poem(self, words: int) -> None:
        want_all, want_poem = 2 * expected_tokens(words), expected_tokens(words)
        variants = {
            "ferrograph_server": ("ferrograph", ["write_poem"], want_poem),
            "ferrograph_client": ("ferrograph", None, want_all),
            "langgraph_client": ("langgraph", None, want_all),
        }
        times: dict[str, list[float]] = {v: [] for v in variants}
        for repeat in range(self.repeats + 1):  # the first, untimed: checks and warms up
            for variant, (server, nodes, want) in variants.items():
                got = asyncio.run(stream_run(self.ports[server],
                                             run_body("seed", words, nodes)))
                self.check(variant, got, want)
                if repeat:
                    times[variant].append(got.total)
        fg_server, fg_client, lg = (median_ms(times[v]) for v in variants)
        self.rows.append(
            f"| `srv_seed_poem` the seed graph ({words} words a node), keep the poem | "
            f"server-side filter {fg_server:.2f} ms; client-side {fg_client:.2f} ms | "
            f"client-side {lg:.2f} ms | {fg_server / lg:.2f} (server-side filter) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and streams")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--out", type=Path, default=HERE / "SERVER.md")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    streams = 50 if args.quick else 200
    with tempfile.TemporaryDirectory(prefix="ferrograph-server-bench-") as where, \
            servers(Path(where), streams) as started:
        bench = Bench(started, repeats)
        for step in (lambda: bench.ttft_idle(100), lambda: bench.tokens_one(2000),
                     lambda: bench.seed_poem(100), lambda: bench.concurrent(streams, 100)):
            step()
            print(bench.rows[-1], flush=True)
    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    text = "\n".join([
        "# `ferrograph serve` vs `langgraph dev`",
        "",
        f"Command: `python benches/server.py{' --quick' if args.quick else ''}` — {repeats} "
        "repeats per row after an untimed one (checked), alternating between the servers, one "
        "client process.",
        f"Machine: {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"run {date.today().isoformat()} at commit {commit}. Both servers and the client "
        "share the cores: read the ratios.",
        "",
        "Medians. Ratio = ferrograph / langgraph for times, ferrograph over langgraph for "
        "rates (above 1: ferrograph is faster).",
        "",
        "| row | ferrograph serve | langgraph dev | ratio |",
        "|---|---|---|---|",
        *bench.rows,
        "",
        (__doc__ or "").split("Rows:", 1)[1].strip(),
        "",
    ])
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
