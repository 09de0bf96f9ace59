"""Retries and timeouts of one attempt of user code: a node's (`_call.NodeRunner`) and the
functional API's function and tasks. `retry_policy_for` is the rule of a `RetryPolicy` list
(the first policy that retries the error, while it has attempts left); `timed` runs one
async attempt under a `TimeoutPolicy` (`run_timeout`, `idle_timeout` and what counts as
progress); `retrying` / `aretrying` are the functional API's loops (a node's, in `_call`,
also numbers each attempt in its runtime and opens a chain run per attempt).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs

from ferrograph.config import CONFIG_KEY_RUNTIME
from ferrograph.errors import GraphBubbleUp, NodeTimeoutError
from ferrograph.types import RetryPolicy, TimeoutPolicy


class _IdleProgress(BaseCallbackHandler):
    """Under an idle timeout with `refresh_on="auto"`: a model's callbacks in the node's
    attempt (inherited through its config, so siblings' do not count) restart the clock."""

    run_inline = True  # in emission order, on the thread that emits

    def __init__(self, touch: Callable[[], None]) -> None:
        self._touch = touch

    def _progress(self, *args: Any, **kwargs: Any) -> None:
        self._touch()

    on_llm_start = on_chat_model_start = on_llm_new_token = on_llm_end = _progress


def _drop_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def retry_policy_for(policies: Sequence[RetryPolicy], exc: Exception,
                     attempt: int) -> RetryPolicy | None:
    """The policy under which attempt number `attempt`, failed with `exc`, is retried (its
    `delay(attempt)` before the next): the first that retries `exc`, unless its attempts
    are used up (None: `exc` is raised)."""
    policy = next((p for p in policies if p.should_retry(exc)), None)
    if policy is None or attempt >= policy.max_attempts:
        return None
    return policy


async def timed(name: str, fn: Callable[[RunnableConfig], Awaitable[Any]],
                config: RunnableConfig, policy: TimeoutPolicy) -> Any:
    """`await fn(config)`, one attempt of task `name`, as its own asyncio task, cancelled with
    `NodeTimeoutError` once it has run `run_timeout` seconds, or gone `idle_timeout` seconds
    without progress: a `runtime.heartbeat()`, or (under `refresh_on="auto"`) a custom stream
    item or a callback of a model it runs (its start, tokens, end), as LangGraph counts for
    nodes and tasks alike."""
    loop = asyncio.get_running_loop()
    run_s, idle_s = policy.run_timeout, policy.idle_timeout
    start = loop.time()
    last = [start]
    if idle_s is not None:
        def touch() -> None:
            last[0] = loop.time()

        runtime = config["configurable"][CONFIG_KEY_RUNTIME]
        overrides: dict[str, Any] = {"heartbeat": touch}
        if policy.refresh_on == "auto":
            writer = runtime.stream_writer

            def write(item: Any) -> None:
                touch()
                writer(item)

            overrides["stream_writer"] = write
        config = {**config, "configurable": {**config["configurable"],
                                             CONFIG_KEY_RUNTIME: runtime.override(
                                                 **overrides)}}
        if policy.refresh_on == "auto":  # a model's callbacks count too
            config = merge_configs(config, {"callbacks": [_IdleProgress(touch)]})
    attempt = asyncio.ensure_future(fn(config))
    try:
        while True:
            deadline, kind = min(
                (d, k) for d, k in ((start + run_s if run_s is not None else None, "run"),
                                    (last[0] + idle_s if idle_s is not None else None,
                                     "idle"))
                if d is not None)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, _ = await asyncio.wait((attempt,), timeout=remaining)
            if done:
                return attempt.result()
    except BaseException:
        attempt.cancel()
        raise
    attempt.cancel()  # abandoned: what it ends with is dropped
    attempt.add_done_callback(_drop_outcome)
    raise NodeTimeoutError(name, loop.time() - start, kind=kind,  # type: ignore[arg-type]
                           idle_timeout=idle_s, run_timeout=run_s)


def retry_policies(policy: Any) -> Sequence[Any]:
    """A `retry_policy` argument (a policy, a list or tuple of them, or None) as a sequence."""
    if policy is None:
        return ()
    if isinstance(policy, (list, tuple)) and not hasattr(policy, "_fields"):
        return policy
    return (policy,)


def retrying(fn: Callable[[], Any], policies: Sequence[Any]) -> Any:
    """`fn()`, attempted again after a failure its policies retry (never an interrupt)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except GraphBubbleUp:
            raise
        except Exception as exc:
            if (policy := retry_policy_for(policies, exc, attempt)) is None:
                raise
            time.sleep(policy.delay(attempt))


async def aretrying(fn: Callable[[], Any], policies: Sequence[Any]) -> Any:
    """`retrying` on the event loop: `await fn()`, asleep on the loop between attempts."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except GraphBubbleUp:
            raise
        except Exception as exc:
            if (policy := retry_policy_for(policies, exc, attempt)) is None:
                raise
            await asyncio.sleep(policy.delay(attempt))
