"""Quotas: what a task counts against its API key's limits (tasks, upload
bytes and videos in flight) and the gateway's cap on upload bytes queued in
all. submit.lua counts and refuses in the same step that records the task;
finish.lua releases. This is what the API answers for a refusal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import ApiError

if TYPE_CHECKING:
    from gateway.keys import Limits

_QUOTA_MESSAGES = {
    "tasks": "API key {key} has {used:.0f} tasks in flight, its limit ({limits.tasks}): "
    "retry when some have ended",
    "bytes": "API key {key} has {used:.0f} upload bytes queued; this one would pass its limit "
    "({limits.bytes} bytes): retry when some tasks have ended",
    "videos": "API key {key} has {used:.0f} video tasks in flight, its limit ({limits.videos}): "
    "retry when one has ended",
}

KEY_LIMIT, QUEUE_FULL = -2, -3  # submit.lua's refusals


def fits_at_all(size: int, key_id: str, limits: Limits | None, max_queued_bytes: int) -> None:
    """An upload larger than a byte cap could never be queued: 413, not a
    429 or 503 whose Retry-After would be waited for in vain."""
    caps = [(max_queued_bytes, "the gateway's cap on queued uploads")]
    if limits is not None and limits.bytes:
        caps.append((limits.bytes, f"API key {key_id}'s limit on upload bytes queued at once"))
    for cap, what in caps:
        if cap and size > cap:
            raise ApiError(
                413,
                "too_large",
                f"this upload is {size} bytes, more than {what} ({cap} bytes) allows "
                "even with nothing else queued; send a smaller one",
            )


def check(
    code: int, limit: str, in_use: float, key_id: str, limits: Limits | None, max_queued_bytes: int
) -> None:
    """Raise the error for submit.lua's refusal `code`, if it is a quota's.
    (Raised here, not returned: a caller holding the error in a local would tie
    it to its frame, and the upload in that frame, until the next GC.)"""
    if code == KEY_LIMIT:
        raise ApiError(
            429,
            "quota_exceeded",
            _QUOTA_MESSAGES[limit].format(key=key_id, limits=limits, used=in_use),
            headers={"Retry-After": "2"},
        )
    if code == QUEUE_FULL:
        raise ApiError(
            503,
            "queue_full",
            f"the queue already holds {int(in_use)} bytes of uploads, the gateway's cap "
            f"(GATEWAY_MAX_QUEUED_BYTES={max_queued_bytes}); retry later",
            headers={"Retry-After": "5"},
        )


def usage_keys(keys, key_id: str, limits: Limits | None) -> list[str]:
    """submit.lua's usage keys: queued bytes in all, and the API key's counters
    (the `none` key when its tasks are not counted)."""
    counted = limits is not None and limits.counted
    return [keys.usage_all, keys.usage(key_id) if counted else keys.none]
