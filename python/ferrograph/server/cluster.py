"""Redis for several `ferrograph serve` instances on one PostgreSQL (`REDIS_URI`): each run's
events on their way from the worker running it to whichever instance holds a client's
stream (`RelayWriter`, `relay_events`), and the hints instances send each other
(`Cluster.hint`: a run was queued, one ended, one is to be cancelled).

A run's events are fenced as its database writes are (`shared.py`): each batch goes in with
the writer's claim token (`RelayWriter`, one Lua script: the stream's fence key holds the
newest token that wrote; an older one is refused), so a worker that was paused past its
lease while another instance took the run over adds nothing to the run's stream.

Why Redis Streams for the events, not pub/sub: a stream keeps its entries, in order, so a
client that subscribes late (a run created on A and claimed by B's worker before A's stream
response starts reading) loses nothing, `Last-Event-ID` replays from it on any instance, and a
reader that reconnects after a Redis hiccup goes on from the last entry it saw. Pub/sub
delivers only to whoever listens at that moment. The hints are pub/sub because each is
recoverable from PostgreSQL, the source of truth (`shared.py`): workers poll the queue, the
cancel request is a column their lease renewal reads, waiters poll the run's status. A Redis
restart delays them; it loses no run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ferrograph.server.database import DatabaseError, redacted
from ferrograph.server.wire import dumps, event_id_key, loads

logger = logging.getLogger("ferrograph.server")

CHANNEL = "ferrograph:hints"
"""The pub/sub channel of the hints (`{"kind", "run_id", ...}` JSON)."""
STREAM_TTL_SECONDS = 3600
"""How long a finished run's events stay in Redis (for `join_stream` replays)."""
STREAM_MAXLEN = 100_000
"""Entries a run's stream keeps at most (approximately): a bound on Redis's memory."""
BLOCK_MS = 2000
"""How long a reader's `XREAD` waits before it looks at the run's status itself."""
READERS_MAX = 10_000
"""Streams an instance relays at once at most (one Redis connection each; Redis's own
default limit of clients is 10,000)."""
RETRY_SECONDS = 0.5
"""Pause before trying Redis again after it failed (restarting, say)."""
QUIET_READS = 5
"""Empty `BLOCK_MS` reads after the run's status says it ended before a stream ends
without the run's end mark (lost when Redis restarted)."""
GIVE_UP_SECONDS = 30.0
"""A stream whose run has ended, with Redis away that long: it ends without its tail."""


def stream_key(run_id: str) -> str:
    return f"ferrograph:run:{run_id}"


def fence_key(run_id: str) -> str:
    """The newest claim token that wrote to the run's stream."""
    return f"ferrograph:fence:{run_id}"


_RELAY_SCRIPT = """
local newest = tonumber(redis.call('GET', KEYS[2]) or '0')
if newest > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
for i = 5, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
             'e', ARGV[i], 'f', ARGV[i + 1], 'i', ARGV[i + 2])
end
if ARGV[4] ~= '0' then
  if ARGV[4] == 'end' then redis.call('XADD', KEYS[1], '*', 'end', '1') end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""
"""A batch of a run's events (KEYS: its stream, its fence key; ARGV: the writer's claim
token, the stream's length bound, the keys' lifetime, `0` | `last` | `end` (the last batch,
with the end mark), then event, frame, id of each event), added only if no newer claim
has written: 1, else 0."""


def lease_seconds_from_env() -> float:
    """`FERROGRAPH_LEASE_SECONDS` (default 30): how long a worker's claim on a run lasts
    without renewal, i.e. how soon another instance takes over the run of a dead one."""
    return float(os.environ.get("FERROGRAPH_LEASE_SECONDS", "30"))


class Cluster:
    """This instance's Redis connection, its id among the instances, and the hints."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.describe = f"REDIS_URI {redacted(uri)}"
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.redis: Any = None
        """Commands that answer at once: the relay's writes, the hints."""
        self.blocking: Any = None
        """`XREAD BLOCK`s, each holding its connection while it waits: a pool of their
        own, so waiting readers never leave the writers they wait for without one."""
        self.on_hint: Callable[[dict[str, Any]], None] = lambda hint: None
        self.relay_script: Any = None
        self._listener: asyncio.Task | None = None

    def check(self) -> None:
        """Connects once, so a bad URI or a Redis that does not answer stops the server
        before it starts, with the client's reason."""
        try:
            import redis
        except ImportError as exc:
            from ferrograph._extras import missing_extra

            raise missing_extra("server", "ferrograph serve with REDIS_URI", exc) from exc
        try:
            client = redis.Redis.from_url(self.uri, socket_connect_timeout=10,
                                          socket_timeout=10)
            try:
                client.ping()
            finally:
                client.close()
        except (redis.RedisError, ValueError) as e:
            reason = str(e).strip().replace(self.uri, redacted(self.uri))
            raise DatabaseError(f"cannot connect to {self.describe}: {reason}") from None

    async def open(self) -> None:
        import redis.asyncio

        self.redis = redis.asyncio.Redis.from_url(
            self.uri, socket_connect_timeout=5, health_check_interval=5)
        self.blocking = redis.asyncio.Redis.from_url(
            self.uri, socket_connect_timeout=5, health_check_interval=5,
            max_connections=READERS_MAX)
        self.relay_script = self.redis.register_script(_RELAY_SCRIPT)
        await self.redis.ping()
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        for client in (self.redis, self.blocking):
            if client is not None:
                await client.aclose()

    async def ping(self) -> None:
        await self.redis.ping()

    async def hint(self, kind: str, run_id: str = "", **extra: Any) -> None:
        """Tells every instance (this one included) that something happened; lost when
        Redis is away, which only delays what PostgreSQL's polling finds anyway."""
        try:
            await self.redis.publish(CHANNEL, dumps({"kind": kind, "run_id": run_id, **extra}))
        except Exception as e:  # noqa: BLE001 - a hint is never needed for correctness
            logger.warning("hint %s %s not sent: %s", kind, run_id, e)

    async def _listen(self) -> None:
        """Hands each hint to `on_hint`, reconnecting while Redis is away (and then
        hinting `wake` locally: whatever was sent meanwhile is found by polling)."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self.on_hint({"kind": "wake", "run_id": ""})
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        try:
                            self.on_hint(loads(message["data"]))
                        except Exception:  # noqa: BLE001 - one bad hint stops nothing
                            logger.exception("hint not handled")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Redis went away: try again
                logger.warning("%s: hints paused: %s", self.describe, e)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


class RelayWriter:
    """A run's events on their way to its Redis stream, in order. `put` never waits (the
    graph must not wait on Redis); a task writes whatever has accumulated in one script call
    per round trip, and tries again while Redis is away.

    Fenced by the claim's token `fence`: a batch goes in only if no newer claim has written
    to the stream; before each batch, `lease_check` (if given) confirms the lease is still
    held (it asks the database when the last renewal is older than a lease). A refused batch
    drops it and everything after, and calls `on_refused`."""

    def __init__(self, cluster: Cluster, run_id: str, fence: int = 0,
                 lease_check: Callable[[], Awaitable[bool]] | None = None,
                 on_refused: Callable[[], None] | None = None) -> None:
        self.script = cluster.relay_script
        self.keys = [stream_key(run_id), fence_key(run_id)]
        self.fence, self.lease_check, self.on_refused = fence, lease_check, on_refused
        self.items: list[tuple[str, bytes, str]] = []
        self.ready = asyncio.Event()
        self.ended = self.refused = False
        self.mark_end = True
        self.task = asyncio.get_running_loop().create_task(self._write())

    def put(self, event: str, frame: bytes, event_id: str) -> None:
        if not self.refused:
            self.items.append((event, frame, event_id))
            self.ready.set()

    async def end(self, mark_end: bool = True, discard: bool = False) -> None:
        """Writes what is left (nothing with `discard`: the run is another's now) and, with
        `mark_end`, the run's end; waits at most a minute for Redis (then the readers learn
        the end from the run's status)."""
        self.ended, self.mark_end = True, mark_end
        if discard:
            self.refused = True
            self.items.clear()
        self.ready.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 60)
        except asyncio.TimeoutError:
            self.task.cancel()
            logger.warning("%s: events not relayed: Redis does not answer", self.keys[0])

    def _refuse(self) -> None:
        self.refused = True
        self.items.clear()
        if self.on_refused is not None:
            self.on_refused()

    async def _write(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            batch, self.items = self.items, []
            ended = self.ended  # `end` was asked: this batch is the last
            while not self.refused:
                try:
                    if self.lease_check is not None and not await self.lease_check():
                        self._refuse()
                        break
                    args: list[Any] = [self.fence, STREAM_MAXLEN, STREAM_TTL_SECONDS,
                                       ("end" if self.mark_end else "last") if ended else "0"]
                    for item in batch:
                        args.extend(item)
                    if not await self.script(keys=self.keys, args=args):
                        self._refuse()  # a newer claim on the run wrote: it is theirs
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - Redis away: keep them, try again
                    logger.warning("%s: relay paused: %s", self.keys[0], e)
                    await asyncio.sleep(RETRY_SECONDS)
            if ended or self.refused:
                return


def _entry_key(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


async def relay_events(cluster: Cluster, run_id: str, queue: asyncio.Queue, end: object,
                       finished: asyncio.Event, *, from_start: bool,
                       last_event_id: str | None) -> None:
    """Puts the run's events from its Redis stream on `queue`, then `end`: all of them
    (`from_start`), those after `last_event_id` that a resumable run keeps (then every
    later one), or those from now on. `finished` (the run's status says it ended) ends the
    reading when the stream has nothing more, should its end mark be lost."""
    r, key = cluster.redis, stream_key(run_id)
    after = event_id_key(last_event_id) if last_event_id is not None else None
    replay_until: tuple[int, int] | None = None
    cursor: bytes | str = "0-0"
    while True:  # where to start (Redis may be away for a while)
        try:
            tail = await r.xrevrange(key, count=1)
            break
        except Exception:  # noqa: BLE001 - Redis away: the run's status may end it
            if finished.is_set():
                queue.put_nowait(end)
                return
            await asyncio.sleep(RETRY_SECONDS)
    if after is not None:
        replay_until = _entry_key(tail[0][0]) if tail else (0, 0)
    elif not from_start:
        if finished.is_set() or (tail and b"end" in tail[0][1]):
            queue.put_nowait(end)
            return
        cursor = tail[0][0] if tail else "0-0"
    quiet_after_end = failures_after_end = 0
    while True:
        try:
            got = await cluster.blocking.xread({key: cursor}, count=1000, block=BLOCK_MS)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - Redis away: go on from `cursor` when it is back
            failures_after_end = failures_after_end + 1 if finished.is_set() else 0
            if failures_after_end * RETRY_SECONDS >= GIVE_UP_SECONDS:
                queue.put_nowait(end)  # the run is over; its last events are not coming
                return
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if not got:
            # finished, yet no end mark: lost with Redis, or still on its way from a worker
            # that retries; quiet for QUIET_READS reads after the status said so: it is over
            quiet_after_end = quiet_after_end + 1 if finished.is_set() else 0
            if quiet_after_end >= QUIET_READS:
                queue.put_nowait(end)
                return
            continue
        for entry_id, fields in got[0][1]:
            cursor = entry_id
            if b"end" in fields:
                queue.put_nowait(end)
                return
            if replay_until is not None and _entry_key(entry_id) <= replay_until:
                # what came before the request: only the kept events after its id
                event_id = fields.get(b"i", b"").decode()
                if not event_id or event_id_key(event_id) <= after:
                    continue
            queue.put_nowait((fields[b"e"].decode(), fields[b"f"]))
