"""Face gallery benchmarks: search latency, recall, memory, load time, enroll rate.

Synthetic galleries of 10k, 100k and 1M 128-d encodings drawn to look like
face_recognition's (face_service/gallery/synthetic.py: norms ~1.44, the same
person ~0.37 apart, different people ~0.81), 5 photos per person.

1. identify latency p50/p99 for one probe face: exact (numpy) at every size,
   approximate (usearch HNSW + exact re-rank) at 100k and 1M - targets: 100k
   exact p50 <= 5 ms, 1M approximate p50 <= 5 ms;
2. recall@1 of approximate vs exact search (same top face) - target >= 0.99;
3. memory of a replica holding 1M faces (RSS delta, exact arrays, then with
   the approximate index) and the time it takes to load them from PostgreSQL
   at start (a fresh process, as a restarted replica);
4. enroll throughput into each store (faces/s, one face per call and 1000 per
   call) and how long a change takes to reach another replica.

Figures are printed, never asserted. A full run takes ~10-15 minutes on 2 cores.

python -m bench.gallery_bench [--sizes 10000,100000,1000000] [--pg-admin-url URL] [--no-store]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from face_service.gallery import Gallery, GallerySettings, NewFace
from face_service.gallery.index import CollectionIndex, IndexSettings
from face_service.gallery.settings import DEFAULT_URL
from face_service.gallery.store import CollectionRef, FaceRows
from face_service.gallery.synthetic import DIM, FaceModel, SyntheticFaces

ROOT = Path(__file__).resolve().parent.parent
PER_PERSON = 5
CHUNK = 100_000
ROWS: list[tuple[str, str, str]] = []  # (measure, figure, target) for the final table


def row(measure: str, figure: str, target: str = "reported") -> None:
    ROWS.append((measure, figure, target))
    print(f"  {measure:<58} {figure:<30} {target}", flush=True)


def population(faces: SyntheticFaces, n: int):
    """Yield (start, encodings float32, person labels) in chunks of CHUNK faces."""
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        first, last = start // PER_PERSON, -(-stop // PER_PERSON)
        centres = faces.identities(last - first, seed=10_000 + first)
        enc = faces.photos(centres, PER_PERSON, seed=20_000 + first)
        labels = np.repeat(np.arange(first, last), PER_PERSON)
        skip = start - first * PER_PERSON
        yield start, enc[skip : skip + stop - start], labels[skip : skip + stop - start]


def probes_for(faces: SyntheticFaces, n: int, count: int, seed: int = 99) -> np.ndarray:
    """New photos (never enrolled) of `count` enrolled people."""
    people = np.random.default_rng(seed).choice(n // PER_PERSON, size=count, replace=False)
    chunks: dict[int, np.ndarray] = {}
    centres = []
    for p in people.tolist():
        start = (p * PER_PERSON // CHUNK) * CHUNK  # the chunk that enrolled person p
        first = start // PER_PERSON
        if first not in chunks:
            last = -(-min(n, start + CHUNK) // PER_PERSON)
            chunks[first] = faces.identities(last - first, seed=10_000 + first)
        centres.append(chunks[first][p - first])
    return faces.photos(np.stack(centres), 1, seed=seed)


def face_rows(start: int, enc: np.ndarray, labels: np.ndarray) -> FaceRows:
    n = len(enc)
    return FaceRows(
        collection_pks=np.ones(n, np.int64),
        pks=np.arange(start + 1, start + n + 1, dtype=np.int64),
        face_ids=np.random.default_rng(start).integers(0, 2**63, size=(n, 2)).astype(np.uint64),
        subjects=[f"person-{p}" for p in labels],
        encodings=enc,
    )


def latency(fn, probes: np.ndarray, repeat: int = 1) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        for probe in probes:
            t0 = time.perf_counter()
            fn(probe[None, :])
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def bench_search(sizes: list[int], threads: int) -> None:
    print("\nidentify latency (one probe, in memory) and recall@1 of approximate vs exact")
    faces = SyntheticFaces(seed=0)
    builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="approx")
    for n in sizes:
        exact_only = IndexSettings(approx_min_faces=0, approx_build_threads=threads)
        index = CollectionIndex(CollectionRef(1, "bench", f"g{n}"), exact_only, builder, n)
        for start, enc, labels in population(faces, n):
            index.add(face_rows(start, enc, labels))
        probes = probes_for(faces, n, 300 if n < 1_000_000 else 200)
        p50, p99 = latency(functools.partial(index.search, top_k=1), probes[:200])
        target = "p50 <= 5 ms" if n == 100_000 else "reported"
        row(f"{n:>9,} faces: exact p50 / p99", f"{p50:.2f} / {p99:.2f} ms", target)
        if n < 100_000:
            index.clear()
            continue

        # The approximate index, built as a replica builds it (background thread).
        t0 = time.perf_counter()
        index.refresh_approx(dataclasses.replace(exact_only, approx_min_faces=1))
        index.wait_approx(timeout=1800)
        build_s = time.perf_counter() - t0
        row(
            f"{n:>9,} faces: build the approximate index ({threads} threads)",
            f"{build_s:.1f} s ({n / build_s:,.0f} faces/s)",
        )
        p50, p99 = latency(functools.partial(index.search, top_k=1, exact=False), probes[:200])
        target = "p50 <= 5 ms" if n == 1_000_000 else "reported"
        row(f"{n:>9,} faces: approximate p50 / p99", f"{p50:.2f} / {p99:.2f} ms", target)
        exact, approx = [], []
        for i in range(0, len(probes), 50):
            batch = probes[i : i + 50]
            exact += index.search(batch, top_k=1, threshold=4.0, exact=True)
            approx += index.search(batch, top_k=1, threshold=4.0, exact=False)
        recall = np.mean(
            [a.best.face_id == e.best.face_id for a, e in zip(approx, exact, strict=True)]
        )
        right = np.mean([e.best.distance <= 0.6 for e in exact])
        row(
            f"{n:>9,} faces: recall@1 approximate vs exact",
            f"{recall:.4f} ({len(probes)} probes)",
            ">= 0.99",
        )
        row(f"{n:>9,} faces: probes with an exact match under 0.6", f"{right:.3f}")
        index.clear()
        if n == 100_000:
            worst_case_recall(n, threads, builder)
    builder.shutdown()


def worst_case_recall(n: int, threads: int, builder) -> None:
    """The same, on clusters spread over all 128 dimensions (no low-dimensional
    structure: harder for HNSW than face embeddings are), to show the margin."""
    model = FaceModel(latent_dim=DIM, identity_spread=0.52, identity_residual=0.0)
    faces = SyntheticFaces(seed=1, model=model)
    settings = IndexSettings(approx_min_faces=1, approx_build_threads=threads)
    index = CollectionIndex(CollectionRef(2, "bench", "worst"), settings, builder, n)
    for start, enc, labels in population(faces, n):
        index.add(face_rows(start, enc, labels))
    index.wait_approx(timeout=1800)
    probes = probes_for(faces, n, 300)
    exact, approx = [], []
    for i in range(0, len(probes), 50):
        exact += index.search(probes[i : i + 50], top_k=1, threshold=4.0, exact=True)
        approx += index.search(probes[i : i + 50], top_k=1, threshold=4.0, exact=False)
    recall = np.mean([a.best.face_id == e.best.face_id for a, e in zip(approx, exact, strict=True)])
    row(
        f"{n:>9,} faces, isotropic clusters (worst case): recall@1",
        f"{recall:.4f} ({len(probes)} probes)",
    )
    index.clear()


# ---------------------------------------------------------------------- stores


def pg_database(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = "percept_gallery_bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    url = f"postgresql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"
    return name, url


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_enroll(label: str, url: str, faces: SyntheticFaces) -> None:
    from face_service.gallery.service import open_store

    store = open_store(GallerySettings(url=url))
    store.migrate()
    store.create_collection("bench", "enroll")
    enc, labels = next(population(faces, 2000))[1:]
    t0 = time.perf_counter()
    for i in range(300):
        store.add_faces("bench", "enroll", [NewFace(f"person-{labels[i]}", enc[i])])
    single = 300 / (time.perf_counter() - t0)
    batch = [NewFace(f"person-{p}", e) for e, p in zip(enc[:1000], labels[:1000], strict=True)]
    t0 = time.perf_counter()
    for _ in range(10):
        store.add_faces("bench", "enroll", batch)
    batched = 10_000 / (time.perf_counter() - t0)
    row(f"{label}: enroll, 1 face per call", f"{single:,.0f} faces/s")
    row(f"{label}: enroll, 1000 faces per call", f"{batched:,.0f} faces/s")
    store.close()


def bench_propagation(label: str, url: str, faces: SyntheticFaces, samples: int = 20) -> None:
    """Add through one replica; time until another identifies it (polling every 1 ms)."""
    settings = GallerySettings(url=url)
    a, b = Gallery.open(settings), Gallery.open(settings)
    try:
        a.start(wait_s=60)
        b.start(wait_s=60)
        a.create_collection("bench", "propagation")
        enc = faces.photos(faces.identities(samples, seed=777), 1, seed=778)
        waits = []
        jitter = np.random.default_rng(0).uniform(0, 0.2, size=samples)
        for i, e in enumerate(enc):
            time.sleep(jitter[i])  # not in step with the other replica's polling
            a.add_faces("bench", "propagation", [NewFace(f"p{i}", e)])
            t0 = time.perf_counter()
            while b.identify("bench", "propagation", e)[0].unknown:
                time.sleep(0.001)
            waits.append(time.perf_counter() - t0)
        ms = np.array(waits) * 1e3
        row(
            f"{label}: change visible on another replica p50 / max",
            f"{np.median(ms):.1f} / {ms.max():.1f} ms",
            "<= 1000 ms",
        )
    finally:
        a.close()
        b.close()


def fill_postgres(url: str, faces: SyntheticFaces, n: int) -> float:
    from face_service.gallery.postgres import PostgresStore

    store = PostgresStore(url)
    store.migrate()
    store.create_collection("bench", "million")
    t0 = time.perf_counter()
    for _, enc, labels in population(faces, n):
        for i in range(0, len(enc), 1000):
            store.add_faces(
                "bench",
                "million",
                [
                    NewFace(f"person-{p}", e)
                    for e, p in zip(enc[i : i + 1000], labels[i : i + 1000], strict=True)
                ],
            )
    rate = n / (time.perf_counter() - t0)
    store.close()
    return rate


def replica_load(url: str, approx_threads: int, probes_path: str) -> dict:
    """Start a replica in a fresh process, as a restarted one; it measures its
    load time, memory and search on what it loaded."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gallery_bench",
            "--replica",
            url,
            "--threads",
            str(approx_threads),
            "--probes",
            probes_path,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def replica_main(url: str, threads: int, probes_path: str) -> None:
    import psutil
    import psycopg  # noqa: F401  (imports are not the gallery's memory)
    import psycopg_pool  # noqa: F401
    import usearch.index  # noqa: F401

    import face_service.gallery.postgres  # noqa: F401

    proc = psutil.Process()
    probes = np.load(probes_path)
    base = proc.memory_info().rss
    settings = GallerySettings(url=url, approx_min_faces=0, approx_build_threads=threads)
    gallery = Gallery.open(settings)
    gallery.start(wait_s=1800)
    exact_rss = proc.memory_info().rss - base
    index = gallery.index.collections()[0]
    exact_p50, exact_p99 = latency(functools.partial(index.search, top_k=1), probes)
    t1 = time.perf_counter()
    # What a replica does above FACE_GALLERY_APPROX_MIN_FACES (here: now).
    index.refresh_approx(dataclasses.replace(index.settings, approx_min_faces=1))
    index.wait_approx(timeout=3600)
    build_s = time.perf_counter() - t1
    approx_rss = proc.memory_info().rss - base
    approx_p50, approx_p99 = latency(functools.partial(index.search, top_k=1, exact=False), probes)
    exact, approx = [], []
    for i in range(0, len(probes), 50):
        exact += index.search(probes[i : i + 50], top_k=1, threshold=4.0, exact=True)
        approx += index.search(probes[i : i + 50], top_k=1, threshold=4.0, exact=False)
    recall = np.mean([a.best.face_id == e.best.face_id for a, e in zip(approx, exact, strict=True)])
    stats = gallery.stats()
    gallery.close()
    print(
        json.dumps(
            {
                "faces": stats.faces,
                "load_s": stats.load_seconds,
                "exact_rss": exact_rss,
                "approx_rss": approx_rss,
                "build_s": build_s,
                "exact_ms": [exact_p50, exact_p99],
                "approx_ms": [approx_p50, approx_p99],
                "recall": float(recall),
                "probes": len(probes),
            }
        )
    )


def bench_stores(admin_url: str, million: int, threads: int) -> None:
    faces = SyntheticFaces(seed=0)
    print("\nstores: enroll throughput and propagation between replicas")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.sqlite3"
        bench_enroll("SQLite", sqlite_url, faces)
        bench_propagation("SQLite", f"sqlite:///{tmp}/propagation.sqlite3", faces)
    name, url = pg_database(admin_url)
    try:
        bench_enroll("PostgreSQL", url, faces)
        bench_propagation("PostgreSQL", url, faces)
    finally:
        drop_database(admin_url, name)

    print(f"\na replica with {million:,} faces from PostgreSQL (a fresh process)")
    name, url = pg_database(admin_url)
    try:
        rate = fill_postgres(url, faces, million)
        row(f"PostgreSQL: enroll {million:,} faces, 1000 per call", f"{rate:,.0f} faces/s")
        with tempfile.TemporaryDirectory() as tmp:
            probes_path = f"{tmp}/probes.npy"
            np.save(probes_path, probes_for(faces, million, 200))
            r = replica_load(url, threads, probes_path)
        n = r["faces"]
        row(f"start-up: load {n:,} faces from PostgreSQL", f"{r['load_s']:.1f} s")
        row(
            "memory per replica, exact (RSS delta)",
            f"{r['exact_rss'] / 2**20:,.0f} MiB ({r['exact_rss'] / n:.0f} B/face)",
        )
        row(f"{n:>9,} faces: exact p50 / p99", "{:.2f} / {:.2f} ms".format(*r["exact_ms"]))
        row(
            f"{n:>9,} faces: build the approximate index ({threads} threads)",
            f"{r['build_s']:.1f} s ({n / r['build_s']:,.0f} faces/s)",
        )
        row(
            "memory per replica, with the approximate index (RSS delta)",
            f"{r['approx_rss'] / 2**20:,.0f} MiB ({r['approx_rss'] / n:.0f} B/face)",
        )
        row(
            f"{n:>9,} faces: approximate p50 / p99",
            "{:.2f} / {:.2f} ms".format(*r["approx_ms"]),
            "p50 <= 5 ms" if n >= 1_000_000 else "reported",
        )
        row(
            f"{n:>9,} faces: recall@1 approximate vs exact",
            f"{r['recall']:.4f} ({r['probes']} probes)",
            ">= 0.99",
        )
    finally:
        drop_database(admin_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get(
            "PERCEPT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL where throw-away databases are created (and dropped)",
    )
    parser.add_argument("--no-store", action="store_true", help="in-memory search only")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="approximate index build threads"
    )
    parser.add_argument("--replica", help=argparse.SUPPRESS)
    parser.add_argument("--probes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica:
        replica_main(args.replica, args.threads, args.probes)
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"face gallery benchmark: {os.cpu_count()} cores; default store {DEFAULT_URL}")
    t0 = time.perf_counter()
    # The largest gallery is measured in a replica that loads it from PostgreSQL.
    bench_search(sizes if args.no_store else sizes[:-1], args.threads)
    if not args.no_store:
        bench_stores(args.pg_admin_url, sizes[-1], args.threads)
    print(f"\n{'measure':<58} {'figure':<30} target")
    for measure, figure, target in ROWS:
        print(f"{measure:<58} {figure:<30} {target}")
    print(f"(run took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
