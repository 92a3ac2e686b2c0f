"""A submit accepted once on GATEWAY_REDIS_WAIT_REPLICAS replicas (WAIT after
the script, down the same connection), or fewer when fewer are in sync."""

from __future__ import annotations

import logging
import time

from redis.exceptions import ResponseError

from gateway.errors import ApiError

logger = logging.getLogger(__name__)

REPLICAS_COUNT_S = 1.0  # how often a submitting process counts the primary's replicas


class ReplicaWait:
    """How many replicas a submit waits for, and its refusal when fewer confirm."""

    def __init__(self, wanted: int, timeout_ms: int) -> None:
        self.wanted = wanted
        self.timeout_ms = timeout_ms
        self._online = 0  # replicas in sync when last counted ...
        self._seen_at = 0.0  # ... at this time (monotonic)

    async def replicas(self, redis) -> int:
        """How many replicas a submit waits for: the wanted number, or fewer
        when fewer are in sync with the primary (counted at most once a
        second): a lone Redis, or a new primary whose replica is not back yet,
        accepts at once rather than refusing every submit."""
        if not self.wanted:
            return 0
        now = time.monotonic()
        if now - self._seen_at > REPLICAS_COUNT_S:
            self._seen_at = now
            try:
                info = await redis.info("replication")
            except ResponseError:  # INFO refused (some managed Redis): trust the setting
                self._online = self.wanted
            else:
                self._online = sum(
                    1
                    for name, value in info.items()
                    if name.startswith("slave") and isinstance(value, dict)
                    and value.get("state") == "online"
                )  # fmt: skip
        return min(self.wanted, self._online)

    def check(self, task_id: str, acked: int, wait_for: int) -> None:
        """Refuse a submit fewer replicas confirmed than it waited for."""
        if acked >= wait_for:
            return
        logger.warning(
            "task %s: %d of %d Redis replicas confirmed it within %d ms",
            task_id, acked, wait_for, self.timeout_ms,
        )  # fmt: skip
        self._seen_at = 0.0  # count them again before the next submit
        raise ApiError(
            503,
            "store_unreplicated",
            f"task {task_id} is stored on the Redis primary, but {acked} of the "
            f"{wait_for} replicas required (GATEWAY_REDIS_WAIT_REPLICAS) confirmed "
            f"it within {self.timeout_ms} ms, so it is not accepted and may still run: "
            "retry with the same Idempotency-Key to get this task rather than a new one",
            headers={"Retry-After": "2"},
            task_id=task_id,
        )
