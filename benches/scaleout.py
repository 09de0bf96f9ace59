"""Several `ferrograph serve` instances on one PostgreSQL and one Redis, on this machine.

    python benches/scaleout.py               # writes benches/SCALEOUT.md
    python benches/scaleout.py --quick --out /tmp/s.md

A throwaway PostgreSQL and Redis (tests/services.py) and the bench graphs of
`benches/server_graphs` (fake streaming models). Rows, each with 1, 2 and 3 instances
(started one after the other, so a row with k instances has exactly k workers competing for
the queue), beside one instance on the same PostgreSQL without Redis (single-instance mode:
runs in process, no queue, no relay):

- `runs_per_s`: `--runs` stateless streamed runs of a 20-word reply, all sent at once,
  spread round-robin over the instances: completed runs per second.
- `ttft_idle`: time to the first token of one 100-word stream on idle instances.
- `relay_per_event`: one 2,000-word stream: time per token event, and what the Redis relay
  adds to each (the cluster's time per event minus the single instance's).

The client is benches/server.py's raw-socket SSE reader. Everything (client, servers,
PostgreSQL, Redis) shares the machine's cores: the rows say what one machine does, not what
machines added would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import server as server_bench  # noqa: E402 - benches/server.py: its client

from tests.server_support import ServerProcess, free_port  # noqa: E402
from tests.services import PostgresServer, RedisServer  # noqa: E402


def start_instance(where: Path, graphs: Path, db: str, redis: str | None,
                   name: str) -> ServerProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(SERVER_GRAPH_LIB="ferrograph", PYTHONUNBUFFERED="1")
    port = free_port()
    argv = [sys.executable, "-m", "ferrograph", "serve", "--config", "langgraph.json",
            "--port", str(port), "--database-uri", db]
    if redis:
        argv += ["--redis-uri", redis]
    return ServerProcess(argv, graphs, env, port, where / f"{name}.log")


async def runs_per_second(ports: list[int], runs: int) -> float:
    body = server_bench.run_body("speak", 20)
    start = time.perf_counter()
    done = await asyncio.gather(*(server_bench.stream_run(ports[n % len(ports)], body)
                                  for n in range(runs)))
    took = time.perf_counter() - start
    assert all(s.tokens == server_bench.expected_tokens(20) for s in done)
    return runs / took


async def first_token(port: int) -> float:
    stream = await server_bench.stream_run(port, server_bench.run_body("speak", 100))
    assert stream.tokens == server_bench.expected_tokens(100)
    return stream.first_token


async def per_event(port: int, words: int) -> float:
    stream = await server_bench.stream_run(port, server_bench.run_body("speak", words))
    assert stream.tokens == server_bench.expected_tokens(words)
    return stream.total / stream.tokens


def measure(ports: list[int], repeats: int, runs: int, words: int) -> dict[str, float]:
    """Medians over `repeats`, after an untimed round."""
    asyncio.run(runs_per_second(ports, min(runs, 10)))
    rates, ttfts, events = [], [], []
    for _ in range(repeats):
        rates.append(asyncio.run(runs_per_second(ports, runs)))
        ttfts.append(asyncio.run(first_token(ports[0])))
        events.append(asyncio.run(per_event(ports[0], words)))
    return {"runs_per_s": statistics.median(rates),
            "ttft_ms": statistics.median(ttfts) * 1000,
            "event_us": statistics.median(events) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and runs")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", default=str(HERE / "SCALEOUT.md"))
    args = parser.parse_args()
    repeats, runs, words = (1, 30, 500) if args.quick else (5, args.runs, 2000)
    where = Path(tempfile.mkdtemp(prefix="ferrograph-scaleout-"))
    graphs = where / "graphs"
    shutil.copytree(HERE / "server_graphs", graphs,
                    ignore=shutil.ignore_patterns("__pycache__"))
    rows: dict[str, dict[str, float]] = {}
    instances: list[ServerProcess] = []
    claims: list[str] = []
    with PostgresServer() as postgres, RedisServer() as redis:
        try:
            single = start_instance(where, graphs, postgres.url, None, "single")
            rows["1 instance, no Redis (single-instance mode)"] = measure(
                [single.port], repeats, runs, words)
            single.stop()
            for k in (1, 2, 3):
                instances.append(start_instance(where, graphs, postgres.url, redis.url,
                                                f"instance-{k}"))
                rows[f"{k} instance{'s' if k > 1 else ''} + Redis"] = measure(
                    [p.port for p in instances], repeats, runs, words)
                print(k, rows[list(rows)[-1]], flush=True)
        finally:
            for p in instances:
                p.stop()
                claims += re.findall(r"runs claimed here: (\d+) on a wake, (\d+) found by "
                                     r"the poll", p.log.read_text(errors="replace"))
    shutil.rmtree(where, ignore_errors=True)
    write(Path(args.out), rows, repeats, runs, words, claims)


ANALYSIS = """\
## What the rows say, and what limits scaling

- On one 2-core machine, instances add no cores: the instances, PostgreSQL, Redis and the
  client share the same two (and, when this was run, other jobs on the machine: load
  average about 10), so the rows measure what the shared mode costs and how the processes
  contend, not what machines added would give. Expect noise of tens of percent between
  runs of this script.
- The shared mode pays, per run, in PostgreSQL: the queue row, the claim (an `UPDATE ...
  FOR UPDATE SKIP LOCKED`), the status and thread writes, and the reads each request makes
  first (the path's thread and runs, the assistants); and, per event, the relay: the
  worker's `XADD`s (one round trip per batch of the events that accumulated meanwhile) and
  the streaming instance's `XREAD`, a hop through a third process. Single-instance mode
  runs the graph in the process that holds the stream and hands events through an
  in-process queue: it stays the fastest way to serve from one machine.
- Wake-ups: a worker claims when told (a Redis hint: a run queued, one ended, a scheduled
  one due) or when one of its own runs ends; its 1 s poll only finds what a lost hint or a
  lease that ran out left, and the count above says how often it did.
- What limits scaling across machines: PostgreSQL. Every run touches it several times
  beside its checkpoints, and every instance shares the one primary (the claims contend on
  the runs table's index of pending runs). Then: each open stream holds one Redis
  connection on the instance that streams it (a blocking `XREAD` per stream; one
  multiplexed reader per instance would lift that), and thread search and count read every
  thread from PostgreSQL on each request.
- Past one PostgreSQL: shard by thread (a thread's runs, record and checkpoints in one
  database; every instance claims from every shard), or take the queue out of PostgreSQL
  (Redis Streams consumer groups, `XAUTOCLAIM` as the lease), keeping PostgreSQL for the
  records and checkpoints; read replicas could serve the per-request reads of threads with
  no run going (a thread with a run going needs its primary, to read its own writes).
  Redis is light here (one stream per run, expiring after it) and Redis Cluster already
  shards the streams by key.
"""


def write(out: Path, rows: dict[str, dict[str, float]], repeats: int, runs: int,
          words: int, claims: list[tuple[str, str]]) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE, check=False).stdout.strip()
    single = next(iter(rows.values()))
    lines = [
        "# Several `ferrograph serve` instances (PostgreSQL + Redis), one machine", "",
        f"Command: `python benches/scaleout.py` — medians of {repeats} repeats after an "
        "untimed round.",
        f"Machine: {os.cpu_count()} cores; Python {platform.python_version()}; run "
        f"{date.today()} at commit {commit}. Client, instances, PostgreSQL and Redis share "
        "the cores.", "",
        f"| setup | runs/s ({runs} streamed runs at once, 20 words) | first token, idle "
        f"(100 words) | time per token event ({words} words) | relay's extra per event |",
        "|---|---|---|---|---|"]
    for name, row in rows.items():
        extra = row["event_us"] - single["event_us"]
        lines.append(f"| {name} | {row['runs_per_s']:.1f} | {row['ttft_ms']:.1f} ms | "
                     f"{row['event_us']:.1f} µs | "
                     f"{'—' if row is single else f'{extra:+.1f} µs'} |")
    lines += ["", "Runs each instance claimed on a wake (a hint, a slot freed) / found by the "
              "1 s poll instead, over the whole script: " + "; ".join(
                  f"instance {n}: {wake} / {poll}" for n, (wake, poll) in
                  enumerate(claims, 1)) + ".",
              "", __doc__.split("\n\n", 2)[2].strip(), "", ANALYSIS.strip()]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
