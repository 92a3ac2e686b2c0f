"""Retries with backoff and deadlines, shared by every client.

A call is retried when the server could not serve it (Unavailable: a network
error, HTTP 502/503, gRPC UNAVAILABLE) or asked the client to slow down
(RateLimited: HTTP 429), waiting the server's Retry-After when it sent one and
an exponential, jittered backoff otherwise, and never past the call's
deadline. Submits carry an Idempotency-Key, so a retried submit returns the
task the first attempt made instead of making a second one.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from percept.errors import Conflict, PerceptError, RateLimited, Unavailable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    """Tries per call, the first included (1: never retry)."""
    initial_backoff: float = 0.2
    """Seconds before the first retry (before jitter)."""
    max_backoff: float = 10.0
    """Longest wait between two tries (before jitter)."""
    multiplier: float = 2.0
    max_retry_after: float = 120.0
    """A server's Retry-After longer than this is not waited for: the error is raised."""

    def retryable(self, error: PerceptError, *, conflict: bool = False) -> bool:
        """Worth another try. `conflict`: a 409 means "the same request is still being
        created" (an idempotent submit), so trying again soon gives its answer."""
        if error.task_id:  # a task ran and failed: trying again would not change it
            return False
        return isinstance(error, Unavailable | RateLimited) or (
            conflict and isinstance(error, Conflict)
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait after `attempt` tries, or None when there is no next try."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter: clients don't retry in step


NO_RETRY = RetryPolicy(attempts=1)


class Deadline:
    """The moment a call must be done by; None is no deadline."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = math.inf if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (>= 0), or None when there is no deadline."""
        return None if self.at == math.inf else max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def allows(self, delay: float) -> bool:
        return time.monotonic() + delay < self.at

    def cap(self, seconds: float | None) -> float | None:
        """`seconds`, but no more than what is left (None: unbounded)."""
        left = self.remaining()
        if seconds is None:
            return left
        return seconds if left is None else min(seconds, left)
