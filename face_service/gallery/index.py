"""Search in a replica's memory over a copy of each collection's encodings.

Exact by default: the distance is face_recognition.face_distance's (the
Euclidean norm of the difference). For a whole collection it is computed as
|x|^2 + |q|^2 - 2 x.q with the squared norms kept beside the float32 matrix,
so one probe costs one matrix-vector product (the GIL released); the
few candidates under the threshold are then measured again in float64, as
face_distance does, and those are the distances returned.

Above `approx_min_faces` a collection also gets an HNSW index (usearch),
built in the background from the same matrix while exact search keeps
serving; its candidates are re-ranked exactly. Its recall@1 against exact
search is measured in the tests and the benchmark.

A face lives in a slot of the collection's arrays (the slot is also its key
in the approximate index). Removing a face zeroes its slot at once and
removes the key from the approximate index; freed slots are reused.
Encodings are never logged.

Thread safety: searches run concurrently under a shared lock; changes
(applied by the sync thread) take it exclusively, for microseconds to a few
milliseconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from face_service.gallery.errors import FaceNotFound, InvalidInput, SubjectNotFound
from face_service.gallery.store import (
    ENCODING_SIZE,
    MAX_ENCODING_COMPONENT,
    CollectionRef,
    FaceRows,
    check_encoding,
    check_subject,
    face_id_from_words,
    face_id_words,
    parse_face_id,
)

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.6
MAX_TOP_K = 100
MAX_PROBES = 100
# float32 |x|^2 + |q|^2 - 2x.q is within ~1e-6 of the true squared distance for
# face encodings (norms ~1.4): candidates are taken with this margin, then
# measured in float64.
_D2_MARGIN = 1e-4


@dataclass(frozen=True)
class IndexSettings:
    """How a replica searches. See GallerySettings for the documented knobs."""

    approx_min_faces: int = 200_000  # 0 turns the approximate index off
    approx_connectivity: int = 16
    approx_expansion_add: int = 64
    approx_expansion_search: int = 128
    approx_candidates: int = 32
    approx_dtype: str = "f16"
    approx_build_threads: int = 1
    approx_build_chunk: int = 50_000


@dataclass(frozen=True)
class Match:
    """An enrolled face within the threshold of the probe."""

    face_id: str
    subject: str
    distance: float


@dataclass(frozen=True)
class Identification:
    """Matches for one probe, best first; none means the face is unknown."""

    matches: tuple[Match, ...]

    @property
    def unknown(self) -> bool:
        return not self.matches

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


@dataclass(frozen=True)
class Verification:
    """Whether a probe is the claimed subject: their closest face, and its distance."""

    subject: str
    match: bool
    distance: float
    face_id: str


def check_search(top_k: int, threshold: float) -> None:
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k is {top_k}: it must be in [1, {MAX_TOP_K}]")
    if not isinstance(threshold, int | float) or not 0.0 < threshold <= 4.0:
        raise InvalidInput(f"threshold is {threshold}: it must be in (0, 4]")


def check_probes(encodings) -> np.ndarray:
    """(128,) or (m, 128) -> float32 (m, 128)."""
    array = np.asarray(encodings, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != ENCODING_SIZE or not 1 <= len(array) <= MAX_PROBES:
        raise InvalidInput(
            f"probe encodings must be 1-{MAX_PROBES} vectors of {ENCODING_SIZE} values"
        )
    if not (np.isfinite(array).all() and np.abs(array).max() <= MAX_ENCODING_COMPONENT):
        for i, row in enumerate(array):  # name the first bad probe, as one at a time would
            check_encoding(row, f"probe[{i}]")
    return np.ascontiguousarray(array)


class _RWLock:
    """Many readers or one writer; a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    def read(self):
        return _Held(self.acquire_read, self.release_read)

    def write(self):
        return _Held(self.acquire_write, self.release_write)


class _Held:
    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire, release) -> None:
        self._acquire, self._release = acquire, release

    def __enter__(self):
        self._acquire()

    def __exit__(self, *exc):
        self._release()


class CollectionIndex:
    """One collection's faces in memory: float32 encodings and their squared
    norms, store keys, face ids, subject codes; optionally an HNSW index."""

    def __init__(
        self,
        ref: CollectionRef,
        settings: IndexSettings,
        builder: ThreadPoolExecutor | None = None,
        capacity: int = 0,
    ) -> None:
        self.ref = ref
        self.settings = settings
        self._builder = builder
        self._lock = _RWLock()
        self._hi = 0  # slots in use or freed below this
        self._live = 0
        self._free: list[int] = []
        self._max_key = -1
        self._alloc(max(capacity, 16))
        self._subjects: list[str | None] = []
        self._subject_codes: dict[str, int] = {}
        self._subject_refs: list[int] = []
        self._free_codes: list[int] = []
        self._approx = None
        self._building = False
        self._dirty: set[int] | None = None
        self._generation = 0
        self._closed = False

    # ---------------------------------------------------------------- storage

    def _alloc(self, capacity: int) -> None:
        self._enc = np.zeros((capacity, ENCODING_SIZE), np.float32)
        self._sq = np.full(capacity, np.inf, np.float32)
        self._keys = np.full(capacity, -1, np.int64)
        self._fid = np.zeros((capacity, 2), np.uint64)
        self._subj = np.full(capacity, -1, np.int32)

    def _grow(self, needed: int) -> None:
        capacity = len(self._keys)
        if needed <= capacity:
            return
        new = max(needed, int(capacity * 1.5) + 16)
        old = (self._enc, self._sq, self._keys, self._fid, self._subj)
        self._alloc(new)
        hi = self._hi
        self._enc[:hi] = old[0][:hi]
        self._sq[:hi] = old[1][:hi]
        self._keys[:hi] = old[2][:hi]
        self._fid[:hi] = old[3][:hi]
        self._subj[:hi] = old[4][:hi]
        old[0].fill(0)  # no stale copy of encodings left in freed memory

    def __len__(self) -> int:
        return self._live

    @property
    def nbytes(self) -> int:
        arrays = self._enc.nbytes + self._sq.nbytes + self._keys.nbytes
        arrays += self._fid.nbytes + self._subj.nbytes
        approx = self._approx.memory_usage if self._approx is not None else 0
        return arrays + approx

    @property
    def approximate(self) -> bool:
        """Whether searches use the approximate index now."""
        return self._approx is not None

    def _code(self, subject: str) -> int:
        code = self._subject_codes.get(subject)
        if code is None:
            if self._free_codes:
                code = self._free_codes.pop()
                self._subjects[code] = subject
                self._subject_refs[code] = 0
            else:
                code = len(self._subjects)
                self._subjects.append(subject)
                self._subject_refs.append(0)
            self._subject_codes[subject] = code
        self._subject_refs[code] += 1
        return code

    def _release_code(self, code: int) -> None:
        self._subject_refs[code] -= 1
        if self._subject_refs[code] <= 0:
            subject = self._subjects[code]
            self._subjects[code] = None  # names are personal data too
            del self._subject_codes[subject]
            self._free_codes.append(code)

    # ---------------------------------------------------------------- changes

    def add(self, rows: FaceRows) -> int:
        """Add faces (rows of this collection); ones already present are skipped."""
        if not len(rows):
            return 0
        with self._lock.write():
            if self._closed:
                return 0
            keys = rows.pks
            if self._live and keys.min() <= self._max_key:
                fresh = ~np.isin(keys, self._keys[: self._hi])
                if not fresh.all():
                    rows = rows.select(fresh)
                    keys = rows.pks
            n = len(keys)
            if not n:
                return 0
            reuse = min(n, len(self._free))
            slots = np.empty(n, np.int64)
            if reuse:
                slots[:reuse] = self._free[-reuse:]
                del self._free[-reuse:]
            if n > reuse:
                self._grow(self._hi + n - reuse)
                slots[reuse:] = np.arange(self._hi, self._hi + n - reuse)
                self._hi += n - reuse
            enc = rows.encodings
            self._enc[slots] = enc
            self._sq[slots] = np.einsum("ij,ij->i", enc, enc)
            self._keys[slots] = keys
            self._fid[slots] = rows.face_ids
            self._subj[slots] = [self._code(s) for s in rows.subjects]
            self._live += n
            self._max_key = max(self._max_key, int(keys.max()))
            if self._approx is not None:
                self._approx.add(slots, enc, threads=1)
            if self._dirty is not None:
                self._dirty.update(slots.tolist())
            self._maybe_change_approx()
            return n

    def remove(self, pks: Iterable[int]) -> int:
        """Forget faces by store key: their slots are zeroed at once."""
        pks = np.fromiter(pks, dtype=np.int64)
        if not len(pks):
            return 0
        with self._lock.write():
            if self._closed or not self._live:
                return 0
            slots = np.flatnonzero(np.isin(self._keys[: self._hi], pks))
            if not len(slots):
                return 0
            self._clear_slots(slots)
            if self._approx is not None:
                self._approx.remove(slots)
            if self._dirty is not None:
                self._dirty.update(slots.tolist())
            self._free.extend(slots.tolist())
            self._live -= len(slots)
            if self._hi > 4096 and self._live < self._hi // 2 and not self._building:
                self._compact()
            self._maybe_change_approx()
            return len(slots)

    def _clear_slots(self, slots: np.ndarray) -> None:
        for code in self._subj[slots].tolist():
            self._release_code(code)
        self._enc[slots] = 0.0
        self._sq[slots] = np.inf
        self._keys[slots] = -1
        self._fid[slots] = 0
        self._subj[slots] = -1

    def _compact(self) -> None:
        """Pack live slots to the front (after many deletions); the approximate
        index, keyed by slot, is rebuilt."""
        live = np.flatnonzero(self._keys[: self._hi] >= 0)
        old = (self._enc, self._sq, self._keys, self._fid, self._subj)
        self._alloc(max(16, int(len(live) * 1.25)))
        n = len(live)
        self._enc[:n] = old[0][live]
        self._sq[:n] = old[1][live]
        self._keys[:n] = old[2][live]
        self._fid[:n] = old[3][live]
        self._subj[:n] = old[4][live]
        old[0].fill(0)
        self._hi, self._free = n, []
        self._generation += 1
        self._drop_approx()

    def clear(self) -> None:
        """Forget every face (the collection was deleted): zero the memory."""
        with self._lock.write():
            self._closed = True
            self._enc.fill(0)
            self._fid.fill(0)
            self._keys.fill(-1)
            self._sq.fill(np.inf)
            self._subjects = []
            self._subject_codes = {}
            self._hi = self._live = 0
            self._free = []
            self._generation += 1
            self._drop_approx()

    # ------------------------------------------------------ approximate index

    def _maybe_change_approx(self) -> None:
        minimum = self.settings.approx_min_faces
        if not minimum or self._builder is None:
            return
        if self._live >= minimum and self._approx is None and not self._building:
            self._building = True
            self._dirty = set()
            self._builder.submit(self._build_approx, self._generation)
        elif self._live < minimum // 2 and self._approx is not None:
            self._drop_approx()

    def refresh_approx(self, settings: IndexSettings | None = None) -> None:
        """Apply new settings: build or drop the approximate index as they say."""
        with self._lock.write():
            if settings is not None:
                self.settings = settings
            self._maybe_change_approx()

    def _drop_approx(self) -> None:
        if self._approx is not None:
            self._approx.reset()
            self._approx = None

    def _new_approx(self):
        from usearch.index import Index

        s = self.settings
        return Index(
            ndim=ENCODING_SIZE,
            metric="l2sq",
            dtype=s.approx_dtype,
            connectivity=s.approx_connectivity,
            expansion_add=s.approx_expansion_add,
            expansion_search=max(s.approx_expansion_search, s.approx_candidates),
        )

    def _build_approx(self, generation: int) -> None:
        try:
            index = self._new_approx()
            chunk = self.settings.approx_build_chunk
            start = 0
            while True:
                with self._lock.read():
                    if self._generation != generation:
                        break
                    stop = min(start + chunk, self._hi)
                    live = start + np.flatnonzero(self._keys[start:stop] >= 0)
                    vectors = self._enc[live].copy()
                    done = stop >= self._hi
                if len(live):
                    index.add(live, vectors, threads=self.settings.approx_build_threads)
                vectors.fill(0)
                start = stop
                if done:
                    break
            with self._lock.write():
                if self._generation != generation or self._live < self.settings.approx_min_faces:
                    index.reset()
                    return
                dirty = np.fromiter(self._dirty or (), dtype=np.int64)
                if len(dirty):
                    present = dirty[[index.contains(int(s)) for s in dirty]]
                    if len(present):
                        index.remove(present)
                    live = dirty[self._keys[dirty] >= 0]
                    if len(live):
                        index.add(live, self._enc[live], threads=1)
                self._approx = index
                logger.info(
                    "approximate index ready for a collection of %d faces (%d MB)",
                    self._live,
                    index.memory_usage // 2**20,
                )
        except Exception:
            logger.exception("building the approximate index failed; exact search continues")
        finally:
            with self._lock.write():
                self._building = False
                self._dirty = None

    def wait_approx(self, timeout: float) -> bool:
        """Block until the approximate index is in use (tests, benchmark)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._approx is not None:
                return True
            time.sleep(0.05)
        return self._approx is not None

    # ----------------------------------------------------------------- search

    def search(
        self,
        probes: np.ndarray,
        *,
        top_k: int = 1,
        threshold: float = DEFAULT_THRESHOLD,
        distinct_subjects: bool = False,
        exact: bool | None = None,
        exclude_key: int | None = None,
    ) -> list[Identification]:
        """probes: float32 (m, 128), checked. exact=None: approximate when built."""
        with self._lock.read():
            return self._search(probes, top_k, threshold, distinct_subjects, exact, exclude_key)

    def search_face(
        self,
        face_id: str,
        *,
        top_k: int = 1,
        threshold: float = DEFAULT_THRESHOLD,
        distinct_subjects: bool = False,
        exact: bool | None = None,
    ) -> Identification:
        """Search with an enrolled face's encoding; that face itself is left out."""
        words = face_id_words(parse_face_id(face_id))
        with self._lock.read():
            fid = self._fid[: self._hi]
            slots = np.flatnonzero((fid[:, 0] == words[0]) & (fid[:, 1] == words[1]))
            if not len(slots):
                raise FaceNotFound(
                    f"face {face_id} is not in collection {self.ref.collection_id!r}"
                )
            slot = int(slots[0])
            probe = self._enc[slot : slot + 1].copy()
            return self._search(
                probe, top_k, threshold, distinct_subjects, exact, int(self._keys[slot])
            )[0]

    def verify(self, subject: str, probe: np.ndarray, threshold: float = DEFAULT_THRESHOLD):
        check_subject(subject)
        with self._lock.read():
            code = self._subject_codes.get(subject)
            if code is None:
                raise SubjectNotFound(
                    f"collection {self.ref.collection_id!r} has no face of subject {subject!r}"
                )
            slots = np.flatnonzero(self._subj[: self._hi] == code)
            d = np.linalg.norm(
                self._enc[slots].astype(np.float64) - probe.astype(np.float64), axis=1
            )
            best = int(np.argmin(d))
            return Verification(
                subject=subject,
                match=bool(d[best] <= threshold),
                distance=float(d[best]),
                face_id=face_id_from_words(self._fid[slots[best]]),
            )

    def _search(self, probes, top_k, threshold, distinct, exact, exclude_key):
        if not self._live:
            return [Identification(()) for _ in probes]
        if exact is None:
            exact = self._approx is None
        if not exact and self._approx is None:
            raise InvalidInput("this collection has no approximate index (it is small)")
        if exact:
            return self._search_exact(probes, top_k, threshold, distinct, exclude_key)
        return self._search_approx(probes, top_k, threshold, distinct, exclude_key)

    def _finish(self, slots, probe, top_k, threshold, distinct, exclude_key) -> Identification:
        """Measure candidates in float64 (face_distance's arithmetic), keep those
        within the threshold, best first."""
        if exclude_key is not None:
            slots = slots[self._keys[slots] != exclude_key]
        if not len(slots):
            return Identification(())
        d = np.linalg.norm(self._enc[slots].astype(np.float64) - probe.astype(np.float64), axis=1)
        keep = d <= threshold
        slots, d = slots[keep], d[keep]
        order = np.argsort(d, kind="stable")
        matches, seen = [], set()
        for i in order:
            slot = int(slots[i])
            code = int(self._subj[slot])
            if distinct:
                if code in seen:
                    continue
                seen.add(code)
            matches.append(
                Match(face_id_from_words(self._fid[slot]), self._subjects[code], float(d[i]))
            )
            if len(matches) == top_k:
                break
        return Identification(tuple(matches))

    def _search_exact(self, probes, top_k, threshold, distinct, exclude_key):
        hi = self._hi
        enc, sq = self._enc[:hi], self._sq[:hi]
        qq = np.einsum("ij,ij->i", probes, probes)
        # (hi, m), the GIL released. One probe: numpy's single-threaded SIMD loop
        # (einsum), memory-bound like BLAS gemv but steady when the cores are busy
        # (multi-threaded gemv measured 1.7-10 ms at 100k on a loaded 2-core
        # machine, einsum 2-3 ms). Several probes: one BLAS gemm.
        one = len(probes) == 1
        d2 = np.einsum("ij,j->i", enc, probes[0])[:, None] if one else enc @ probes.T
        d2 *= -2.0
        d2 += sq[:, None]
        d2 += qq[None, :]
        limit = (threshold + _D2_MARGIN) ** 2
        results = []
        for j, probe in enumerate(probes):
            col = d2[:, j]
            candidates = np.flatnonzero(col <= limit)
            want = top_k + (exclude_key is not None)
            cap = want if not distinct else max(4 * want, 64)
            while True:
                if len(candidates) > cap:
                    part = np.argpartition(col[candidates], cap - 1)[:cap]
                    chosen = candidates[part]
                else:
                    chosen = candidates
                result = self._finish(chosen, probe, top_k, threshold, distinct, exclude_key)
                if len(result.matches) >= top_k or len(chosen) == len(candidates):
                    break
                cap *= 4
            results.append(result)
        return results

    def _search_approx(self, probes, top_k, threshold, distinct, exclude_key):
        count = max(self.settings.approx_candidates, 4 * top_k if distinct else top_k + 1)
        found = self._approx.search(probes, count, threads=1)
        keys = np.asarray(found.keys).reshape(len(probes), -1)
        counts = np.atleast_1d(getattr(found, "counts", keys.shape[1]))
        return [
            self._finish(
                keys[j, : counts[j]].astype(np.int64),
                probe,
                top_k,
                threshold,
                distinct,
                exclude_key,
            )
            for j, probe in enumerate(probes)
        ]


class GalleryIndex:
    """Every collection of every tenant that this replica holds in memory."""

    def __init__(self, settings: IndexSettings | None = None, *, background: bool = True) -> None:
        """background=False: no approximate index is built (a staging copy for a reload)."""
        self.settings = settings or IndexSettings()
        self._lock = threading.Lock()
        self._by_pk: dict[int, CollectionIndex] = {}
        self._by_name: dict[tuple[str, str], int] = {}
        self._builder = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery-approx")
            if background
            else None  # (its thread starts with the first build)
        )

    def get(self, tenant: str, collection_id: str) -> CollectionIndex | None:
        pk = self._by_name.get((tenant, collection_id))
        return None if pk is None else self._by_pk.get(pk)

    def ensure(self, ref: CollectionRef, capacity: int = 0) -> CollectionIndex:
        with self._lock:
            index = self._by_pk.get(ref.pk)
            if index is None:
                index = CollectionIndex(ref, self.settings, self._builder, capacity)
                old = self._by_name.get((ref.tenant, ref.collection_id))
                if old is not None and old != ref.pk:  # a drop we have not seen yet
                    self._drop_locked(old)
                self._by_pk[ref.pk] = index
                self._by_name[(ref.tenant, ref.collection_id)] = ref.pk
            return index

    def drop(self, pk: int) -> None:
        with self._lock:
            self._drop_locked(pk)

    def _drop_locked(self, pk: int) -> None:
        index = self._by_pk.pop(pk, None)
        if index is None:
            return
        key = (index.ref.tenant, index.ref.collection_id)
        if self._by_name.get(key) == pk:
            del self._by_name[key]
        index.clear()

    def add_rows(self, rows: FaceRows) -> int:
        """Add faces of any collections (rows of unknown collections are ignored)."""
        if not len(rows):
            return 0
        added = 0
        cpks = rows.collection_pks
        collections = np.unique(cpks)
        for cpk in collections:
            index = self._by_pk.get(int(cpk))
            if index is not None:
                part = rows if len(collections) == 1 else rows.select(cpks == cpk)
                added += index.add(part)
        return added

    def remove(self, collection_pk: int, pks: Sequence[int]) -> int:
        index = self._by_pk.get(collection_pk)
        return index.remove(pks) if index is not None else 0

    def replace(self, other: GalleryIndex) -> None:
        """Take over another index's collections (after a full reload)."""
        with self._lock:
            old = list(self._by_pk.values())
            self._by_pk = dict(other._by_pk)
            self._by_name = dict(other._by_name)
            for index in self._by_pk.values():
                with index._lock.write():
                    index._builder = self._builder
                    index._maybe_change_approx()
        for index in old:
            if index not in self._by_pk.values():
                index.clear()

    def collections(self) -> list[CollectionIndex]:
        return list(self._by_pk.values())

    @property
    def face_count(self) -> int:
        return sum(len(i) for i in self._by_pk.values())

    def close(self) -> None:
        with self._lock:
            for index in self._by_pk.values():
                index.clear()
            self._by_pk.clear()
            self._by_name.clear()
        if self._builder is not None:
            self._builder.shutdown(wait=False, cancel_futures=True)
