"""Retries of the function and its tasks, under their `RetryPolicy` (one, a list, or none):
`NodeRunner`'s rule (`_call.retry_policy_for`), without its per-attempt config and chain
runs. Timeouts are `_call.timed`'s, called with `model_progress=False`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from ferrograph.errors import GraphBubbleUp
from ferrograph.pregel._call import retry_policy_for


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
