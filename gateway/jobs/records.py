"""A task's record: its status, the hash Redis holds and the JSON the API shows,
and the small values the job table hands its callers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

DEFAULT_TENANT = "default"


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


@dataclass
class Task:
    id: str
    kind: str
    media: str
    status: Status
    created_at: float
    expires_at: float
    options: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    progress_done: int = 0
    progress_total: int = 0
    attempts: int = 0
    result: dict | None = None
    error: dict | None = None
    tenant: str = DEFAULT_TENANT
    replica: str | None = None
    mode: str = "queued"
    private: bool = False

    @property
    def kind_id(self) -> str:
        return f"{self.kind}:{self.media}"

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Task:
        def num(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if value not in (None, "") else None

        return cls(
            id=raw["id"],
            kind=raw["kind"],
            media=raw["media"],
            status=Status(raw["status"]),
            created_at=float(raw["created_at"]),
            expires_at=float(raw["expires_at"]),
            options=json.loads(raw.get("options") or "{}"),
            started_at=num("started_at"),
            finished_at=num("finished_at"),
            progress_done=int(raw.get("progress_done") or 0),
            progress_total=int(raw.get("progress_total") or 0),
            attempts=int(raw.get("attempts") or 0),
            result=json.loads(raw["result"]) if raw.get("result") else None,
            error=json.loads(raw["error"]) if raw.get("error") else None,
            tenant=raw.get("tenant") or DEFAULT_TENANT,
            replica=raw.get("replica") or None,
            mode=raw.get("mode") or "queued",
        )

    def progress(self) -> dict[str, int | None]:
        """A video: frames done of those expected (None until known). An image
        is one item: 1 of 1 once it succeeded, 0 of 1 before, or when it failed
        or was cancelled."""
        if self.media == "image":
            return {"done": int(self.status == Status.SUCCEEDED), "total": 1}
        return {"done": self.progress_done, "total": self.progress_total or None}

    def to_json(self, status_url: str | None = None, *, tenant: bool = False) -> dict[str, Any]:
        """The task's REST body; `tenant` adds whose it is (for admins, who see all)."""
        body: dict[str, Any] = {
            "task_id": self.id,
            "kind": self.kind,
            "media": self.media,
            "status": self.status.value,
            "progress": self.progress(),
            "attempts": self.attempts,
            "options": self.options,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "expires_at": iso(self.expires_at),
        }
        if status_url:
            body["status_url"] = status_url
        if self.replica:
            body["replica"] = self.replica
        if tenant:
            body["tenant"] = self.tenant
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class Event:
    """One entry of a task's event stream (`status`, `progress`, `frame`)."""

    id: str
    type: str
    data: dict[str, Any]


class Claimed(NamedTuple):
    """A queue entry a dispatcher took: which kind, which entry, which task."""

    kind_id: str
    entry_id: str
    task_id: str


@dataclass(frozen=True)
class Started:
    """What starting an attempt found: code 1 run `request` (attempt number
    `attempts`); 0 the task is gone, cancelled or ended; -1 its attempts are
    spent; -2 its stored request is gone."""

    code: int
    attempts: int
    request: bytes | None = None
    created_at: float = 0.0
    tenant: str = DEFAULT_TENANT  # whose task: the backends see it (x-percept-tenant)
