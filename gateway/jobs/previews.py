"""Previews: a finished image task's request (its upload inside), kept a
while (GATEWAY_KEEP_INPUT_S) for the console to draw on, within byte budgets
per tenant and in all (GATEWAY_PREVIEW_BYTES_PER_TENANT / _TOTAL) and at most
GATEWAY_KEEP_INPUT_MAX of them; the oldest go first. finish.lua keeps them
(lua/previews.lua); this is the reading side."""

from __future__ import annotations

from typing import Any

from gateway.jobs.schema import KeySchema

PREVIEW_BYTES = (64 << 20, 256 << 20)  # previews kept: bytes per tenant, in all


class Previews:
    """The previews side of the job table (a part of JobStore)."""

    redis: Any
    raw: Any
    keys: KeySchema

    async def preview(self, task_id: str) -> bytes | None:
        """The request a finished image task ran (its upload inside), while kept."""
        return await self.raw.get(self.keys.preview(task_id))

    async def preview_dropped(self, task_id: str) -> bool:
        """Whether the task's preview was dropped to keep the previews' budget."""
        return bool(await self.redis.hget(self.keys.task(task_id), "input_dropped"))

    async def preview_bytes_held(self) -> tuple[int, dict[str, int]]:
        """Bytes of previews kept, as Redis holds them: in all, and per tenant."""
        raw = await self.redis.hgetall(self.keys.preview_bytes)
        tenants = {k[2:]: int(v) for k, v in raw.items() if k.startswith("t:")}
        return int(raw.get("all", 0)), tenants

    def preview_keys(self) -> list[str]:
        """What finish.lua is given to keep a preview within the budgets: the
        previews' set, sizes and bytes, and the families of a tenant's
        previews, of previews and of records (a dropped preview's task)."""
        k = self.keys
        return [
            k.previews, k.preview_sizes, k.preview_bytes,
            k.previews_of(""), k.preview(""), k.task(""),
        ]  # fmt: skip
