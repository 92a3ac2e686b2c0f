"""Keeps a replica's in-memory index current with the store.

One thread per replica:

1. migrates the schema (many replicas may race; the stores serialize it),
2. loads every collection from one consistent snapshot, noting the change
   log's seq at that instant,
3. then follows the change log in seq order: woken by PostgreSQL's
   LISTEN/NOTIFY within milliseconds (with a heartbeat poll every
   `heartbeat_s` as a fallback and liveness check), or by polling SQLite's
   log head every `poll_interval_s`. After a reconnect it resumes from the
   last seq it applied; if the log was pruned past that point it reloads.

The log holds only ids, so applying an "add" reads the faces (encodings
included) from the store; a face deleted meanwhile is simply not there.

Availability: the replica is `available` once loaded and while its last
successful check of the store is at most `max_staleness_s` old. When not,
searches refuse with StoreUnavailable: a replica that cannot hear about
deletions must not keep matching deleted faces. `on_availability(bool)` is
called on every change of that flag, from a watchdog thread (bridge it to
asyncio with `loop.call_soon_threadsafe`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from face_service.gallery.errors import StoreUnavailable
from face_service.gallery.index import GalleryIndex
from face_service.gallery.sql import GalleryStore
from face_service.gallery.store import Change, ChangeKind, CollectionRef

logger = logging.getLogger(__name__)

_FETCH_CHUNK = 10_000


@dataclass(frozen=True)
class SyncSettings:
    poll_interval_s: float = 0.15
    heartbeat_s: float = 0.5
    max_staleness_s: float = 2.0
    change_retention_s: float = 3600.0
    prune_interval_s: float = 60.0
    load_chunk: int = 20_000


class GallerySync:
    """Follows the store's change log into a GalleryIndex. start() / stop()."""

    def __init__(
        self,
        store: GalleryStore,
        index: GalleryIndex,
        settings: SyncSettings | None = None,
        on_availability: Callable[[bool], None] | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.settings = settings or SyncSettings()
        self._on_availability = on_availability
        self._apply_lock = threading.RLock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._seq = 0
        self._healthy = False
        self._failing = False
        self._last_ok = 0.0
        self._fatal: BaseException | None = None
        self._reported: bool | None = None
        self._last_prune = 0.0
        self.last_error = ""
        self.load_seconds: float | None = None
        self.loaded_faces = 0

    # --------------------------------------------------------------- control

    def start(self) -> None:
        """Start following in the background; see wait_ready()."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="gallery-sync", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name="gallery-health", daemon=True)
        self._thread.start()
        self._watchdog.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in (self._thread, self._watchdog):
            if thread is not None:
                thread.join(timeout)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first load is done (True), or timeout (False).
        Raises the error that stopped the sync for good (a schema newer than the code)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.is_set():
            if self._fatal is not None:
                raise self._fatal
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._ready.wait(0.1 if left is None else min(0.1, left))
        if self._fatal is not None:
            raise self._fatal
        return self._ready.is_set()

    # ---------------------------------------------------------- availability

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def available(self) -> bool:
        return (
            self._ready.is_set()
            and self._healthy
            and time.monotonic() - self._last_ok <= self.settings.max_staleness_s
        )

    @property
    def seq(self) -> int:
        """The last change-log seq applied to memory."""
        return self._seq

    def check_available(self) -> None:
        if self.available:
            return
        if not self._ready.is_set():
            raise StoreUnavailable("the face gallery is still loading; retry shortly")
        raise StoreUnavailable(
            "the face gallery database is unreachable; identification is paused until it is back"
        )

    def report_failure(self, error: BaseException) -> None:
        """An operation could not reach the store: stop answering until the sync
        thread reaches it again."""
        self.last_error = str(error)
        self._healthy = False
        if not self._failing:
            self._failing = True
            logger.warning("face gallery database unreachable: %s", self.last_error)

    def _ok(self) -> None:
        self._last_ok = time.monotonic()
        self._healthy = True
        if self._failing:
            self._failing = False
            logger.info("face gallery database reachable again")

    def _watch(self) -> None:
        """Call on_availability on each change of `available` (incl. staleness)."""
        while not self._stop.wait(0.1):
            now = self.available
            if now != self._reported:
                self._reported = now
                if self._on_availability is not None:
                    try:
                        self._on_availability(now)
                    except Exception:
                        logger.exception("on_availability callback failed")

    # ------------------------------------------------------------- the loop

    def _run(self) -> None:
        listener = None
        backoff = 0.1
        migrated = False
        try:
            while not self._stop.is_set():
                try:
                    if not migrated:
                        self.store.migrate()
                        migrated = True
                    if not self._ready.is_set():
                        self._reload()
                        self._ok()
                        self._ready.set()
                    if listener is None:
                        listener = self.store.open_listener(self.settings.poll_interval_s)
                    head = listener.head()
                    if head.seq > self._seq or head.pruned_through > self._seq:
                        self.catch_up(pruned_through=head.pruned_through)
                    self._ok()
                    self._maybe_prune()
                    backoff = 0.1
                    listener.wait(self.settings.heartbeat_s)
                except RuntimeError as exc:  # e.g. a schema newer than this code
                    logger.error("face gallery sync stopped: %s", exc)
                    self._fatal = exc
                    self.report_failure(exc)
                    return
                except Exception as exc:  # the store is unreachable, or a bug: retry
                    if not isinstance(exc, StoreUnavailable):
                        logger.exception("face gallery sync failed; retrying")
                    self.report_failure(exc)
                    if listener is not None:
                        _close_quietly(listener)
                        listener = None
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
        finally:
            if listener is not None:
                _close_quietly(listener)

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self.settings.prune_interval_s:
            return
        self._last_prune = now
        pruned = self.store.prune_changes(self.settings.change_retention_s)
        if pruned:
            logger.info("pruned %d change-log rows", pruned)

    # ------------------------------------------------------------- applying

    def wait_applied(self, seq: int) -> None:
        """After a write through this replica: apply the log up to `seq` now, so
        the writer's next search sees its change. Never raises: the write is
        committed whatever happens here, and the sync thread applies it later."""
        if not seq or self._seq >= seq:
            return
        try:
            self.catch_up()
        except Exception as exc:  # the sync thread will retry
            logger.warning("applying change %d at once failed: %s", seq, exc)

    def catch_up(self, pruned_through: int = 0) -> int:
        """Apply every committed change after the last applied seq; -> changes applied."""
        applied = 0
        with self._apply_lock:
            if not self._ready.is_set():
                return 0
            if pruned_through > self._seq:
                logger.warning(
                    "change log pruned past seq %d (at %d): reloading", self._seq, pruned_through
                )
                self._reload()
                return 0
            while not self._stop.is_set():
                changes = self.store.changes_since(self._seq)
                if not changes:
                    break
                self._apply(changes)
                self._seq = changes[-1].seq
                applied += len(changes)
        return applied

    def _apply(self, changes: list[Change]) -> None:
        pending: list[int] = []  # face pks of a run of consecutive ADDs

        def flush() -> None:
            for i in range(0, len(pending), _FETCH_CHUNK):
                self.index.add_rows(self.store.faces_by_pks(pending[i : i + _FETCH_CHUNK]))
            pending.clear()

        for change in changes:
            if change.kind is ChangeKind.ADD:
                pending.extend(change.face_pks)
                continue
            flush()
            if change.kind is ChangeKind.CREATE:
                self.index.ensure(
                    CollectionRef(change.collection_pk, change.tenant, change.collection_id)
                )
            elif change.kind is ChangeKind.REMOVE:
                self.index.remove(change.collection_pk, change.face_pks)
            elif change.kind is ChangeKind.DROP:
                self.index.drop(change.collection_pk)
        flush()

    def _reload(self) -> None:
        """Load everything from one consistent snapshot into a fresh index, then
        swap it in."""
        with self._apply_lock:
            started = time.perf_counter()
            staging = GalleryIndex(self.index.settings, background=False)
            with self.store.snapshot(self.settings.load_chunk) as snap:
                for ref in snap.collections:
                    staging.ensure(ref, capacity=ref.face_count)
                for rows in snap.chunks:
                    staging.add_rows(rows)
                    if self._stop.is_set():
                        return
                seq = snap.seq
            self.index.replace(staging)
            self._seq = seq
            self.load_seconds = time.perf_counter() - started
            self.loaded_faces = self.index.face_count
            logger.info(
                "face gallery loaded: %d faces in %d collections in %.2f s (seq %d)",
                self.loaded_faces,
                len(snap.collections),
                self.load_seconds,
                seq,
            )


def _close_quietly(listener) -> None:
    with suppress(Exception):  # already broken
        listener.close()
