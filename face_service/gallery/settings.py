"""Gallery settings: env FACE_GALLERY_<NAME> (or nested in the face service's settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from face_service.gallery.index import DEFAULT_THRESHOLD, IndexSettings
from face_service.gallery.sync import SyncSettings
from percept_runtime.settings import SecretFiles, part_settings

DEFAULT_URL = "sqlite:///~/.local/share/percept/face-gallery.sqlite3"


class GallerySettings(SecretFiles):
    """Where the face gallery is kept and how replicas search and follow it."""

    model_config = SettingsConfigDict(env_prefix="FACE_GALLERY_", extra="ignore")
    secret_files = (("url", "url_file"),)

    url: str = DEFAULT_URL
    """The store: sqlite:///path/to/file (embedded default; '~' expands) or postgresql://user@host:port/db."""
    url_file: Path | None = None
    """Read url from this file (a mounted secret holding the password) instead."""
    pool_max: int = Field(4, ge=1, le=64)
    """PostgreSQL: pooled connections per replica."""
    connect_timeout_s: float = Field(3.0, gt=0)
    """PostgreSQL: give up connecting (and answer UNAVAILABLE) after this."""
    statement_timeout_s: float = Field(60.0, gt=0)
    """PostgreSQL: longest statement (a collection delete is the longest)."""
    poll_interval_s: float = Field(0.15, gt=0, le=1.0)
    """SQLite: how often a replica checks the change log's head."""
    heartbeat_s: float = Field(0.5, gt=0, le=1.0)
    """PostgreSQL: the sync loop's fallback poll and liveness check between notifications."""
    max_staleness_s: float = Field(2.0, gt=0)
    """Searches answer UNAVAILABLE once the store has not been reached for this long."""
    change_retention_s: float = Field(3600.0, gt=0)
    """Change-log rows (ids only) older than this are pruned; a replica disconnected longer reloads everything."""
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0, le=4.0)
    """Default match distance (face_recognition's tolerance): a face matches when its distance is <= this."""
    approx_min_faces: int = Field(200_000, ge=0)
    """Collections with at least this many faces also get an approximate (HNSW) index; 0 turns it off. Below half of it the index is dropped."""
    approx_connectivity: int = Field(16, ge=4, le=128)
    """HNSW links per node (M)."""
    approx_expansion_add: int = Field(64, ge=8, le=1024)
    """HNSW search depth while building (efConstruction)."""
    approx_expansion_search: int = Field(128, ge=8, le=4096)
    """HNSW search depth per query (ef): recall vs latency."""
    approx_candidates: int = Field(32, ge=1, le=1024)
    """Approximate candidates re-ranked with exact distances."""
    approx_dtype: Literal["f32", "f16"] = "f16"
    """Vector precision inside the HNSW index (candidates are re-ranked in float64)."""
    approx_build_threads: int = Field(1, ge=1)
    """Threads that build an approximate index (in the background)."""

    def index_settings(self) -> IndexSettings:
        return part_settings(self, IndexSettings)

    def sync_settings(self) -> SyncSettings:
        return part_settings(self, SyncSettings)
