"""Settings said once (percept_runtime/settings.py, process.py): every process
reads the shared pieces under its own env prefix, a mounted secret gives a
value only when the value itself is not given, and a worker's liveness check
reads its heartbeat's age."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from face_service.gallery.settings import DEFAULT_URL, GallerySettings
from face_service.settings import FaceSettings
from gateway.settings import GatewaySettings
from object_service.settings import ObjectSettings
from percept_runtime.process import check_heartbeat
from source_worker.settings import WorkerSettings


@pytest.fixture
def env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("GATEWAY_", "FACE_", "OBJECT_", "SOURCES_")) or name == "REDIS_URL":
            monkeypatch.delenv(name)
    return monkeypatch


def test_each_process_reads_the_shared_settings_under_its_own_prefix(env):
    env.setenv("GATEWAY_LOG_LEVEL", "DEBUG")
    env.setenv("FACE_LOG_LEVEL", "WARNING")
    env.setenv("SOURCES_LOG_LEVEL", "ERROR")
    env.setenv("SOURCES_METRICS_PORT", "9101")
    env.setenv("OBJECT_PORT", "0")
    assert GatewaySettings().log_level == "DEBUG"
    assert FaceSettings(workers=1).log_level == "WARNING"
    assert ObjectSettings(workers=1).log_level == "INFO"
    assert ObjectSettings(workers=1).port == 0
    worker = WorkerSettings()
    assert (worker.log_level, worker.metrics_port) == ("ERROR", 9101)
    assert (FaceSettings(workers=1).port, ObjectSettings(workers=1, port=50052).port) == (
        50051,
        50052,
    )


def test_redis_url_is_the_stacks_or_the_prefixed_one(env):
    assert GatewaySettings().redis_url == WorkerSettings().redis_url == "redis://127.0.0.1:6379/0"
    env.setenv("SOURCES_REDIS_URL", "redis://127.0.0.1:7/0")
    assert WorkerSettings().redis_url == "redis://127.0.0.1:7/0"
    assert GatewaySettings().redis_url == "redis://127.0.0.1:6379/0"
    env.setenv("REDIS_URL", "redis://127.0.0.1:8/0")
    assert GatewaySettings().redis_url == WorkerSettings().redis_url == "redis://127.0.0.1:8/0"


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_a_port_out_of_range_is_refused_everywhere(env, port):
    for variable, settings in (
        ("GATEWAY_PORT", GatewaySettings),
        ("GATEWAY_METRICS_PORT", GatewaySettings),
        ("FACE_HEALTH_PORT", lambda: FaceSettings(workers=1)),
        ("OBJECT_PORT", lambda: ObjectSettings(workers=1)),
        ("SOURCES_METRICS_PORT", WorkerSettings),
    ):
        env.setenv(variable, port)
        with pytest.raises(ValueError, match="65535|0"):
            settings()
        env.delenv(variable)


def test_a_mounted_secret_gives_a_value_not_given(env, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n")
    env.setenv("GATEWAY_GRPC_TOKEN_FILE", str(secret))
    env.setenv("FACE_AUTH_TOKEN_FILE", str(secret))
    env.setenv("FACE_GALLERY_URL_FILE", str(secret))
    assert GatewaySettings().grpc_token == "from-the-file"
    assert FaceSettings(workers=1).auth_token == "from-the-file"
    assert GallerySettings().url == "from-the-file"
    env.setenv("GATEWAY_GRPC_TOKEN", "given")
    env.setenv("FACE_GALLERY_URL", "sqlite:///given.sqlite3")
    assert GatewaySettings().grpc_token == "given"  # the value itself wins
    assert GallerySettings().url == "sqlite:///given.sqlite3"
    env.delenv("FACE_GALLERY_URL_FILE")
    env.delenv("FACE_GALLERY_URL")
    assert GallerySettings().url == DEFAULT_URL


def test_the_gallerys_parts_and_the_object_model_take_their_settings_by_name(env):
    gallery = GallerySettings(approx_candidates=7, heartbeat_s=0.25)
    assert gallery.index_settings().approx_candidates == 7
    assert gallery.index_settings().approx_build_chunk == 50_000  # not a setting: its default
    assert gallery.sync_settings().heartbeat_s == 0.25
    config = ObjectSettings(workers=2, threads=0, backend="onnx", imgsz=320).engine_config()
    assert (config.backend, config.imgsz) == ("onnx", 320)
    assert config.threads == max(1, (os.cpu_count() or 1) // 2)
    with pytest.raises(ValueError, match="auto"):
        ObjectSettings(workers=1, backend="tensorflow")


def test_a_heartbeat_check_reads_the_files_age(tmp_path, capsys):
    beat = tmp_path / "alive"
    assert check_heartbeat(str(beat), 30) == 1
    assert "no heartbeat" in capsys.readouterr().out
    beat.touch()
    assert check_heartbeat(str(beat), 30) == 0
    old = time.time() - 60
    os.utime(beat, (old, old))
    assert check_heartbeat(str(beat), 30) == 1


@pytest.mark.parametrize("module", ["gateway.worker", "source_worker"])
def test_a_workers_check_flag_answers_from_its_heartbeat(tmp_path, module):
    beat = tmp_path / "alive"
    prefix = "GATEWAY_" if module == "gateway.worker" else "SOURCES_"
    env = {**os.environ, f"{prefix}HEARTBEAT_FILE": str(beat)}
    check = [sys.executable, "-m", module, "--check", "--max-age", "30"]
    assert subprocess.run(check, env=env, capture_output=True).returncode == 1
    beat.touch()
    done = subprocess.run(check, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "heartbeat" in done.stdout
