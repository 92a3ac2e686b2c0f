"""The seed's REST front: Flask, the same paths as Percept's gateway.

`POST /api/detect/{face|object}/image` (multipart field `file`) base64-encodes
the upload into a Celery task and answers 202 {task_id, status, status_url};
with `?wait=true` (simple mode) it blocks on the result and answers 200 with
the finished task. `GET /api/task/<id>` reads the result backend.

Served by gunicorn: `gunicorn -c bench/seed/gunicorn_conf.py 'bench.seed.app:create_app()'`.
"""

from __future__ import annotations

import base64

from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult
from flask import Flask, jsonify, request, url_for

from bench.seed.tasks import app as celery_app
from bench.seed.tasks import detect_faces, detect_objects

WAIT_TIMEOUT_S = 30
STATUS = {
    "PENDING": "queued",
    "RECEIVED": "queued",
    "STARTED": "running",
    "RETRY": "running",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "REVOKED": "cancelled",
}
TASKS = {"face": detect_faces, "object": detect_objects}


def _task_json(result: AsyncResult) -> dict:
    state = result.state
    body = {
        "task_id": result.id,
        "status": STATUS.get(state, state.lower()),
        "status_url": url_for("get_task", task_id=result.id, _external=True),
        "result": None,
        "error": None,
    }
    if state == "SUCCESS":
        body["result"] = result.result
    elif state == "FAILURE":
        body["error"] = {"code": "failed", "message": str(result.result)}
    return body


def create_app() -> Flask:
    app = Flask("seed")

    @app.post("/api/detect/<kind>/image")
    def detect(kind: str):
        task = TASKS.get(kind)
        if task is None:
            return jsonify(error={"code": "not_found", "message": f"no detector {kind}"}), 404
        upload = request.files.get("file")
        data = upload.read() if upload else b""
        if not data:
            return jsonify(
                error={"code": "invalid_request", "message": "field 'file' is required"}
            ), 422
        result = task.delay(base64.b64encode(data).decode("ascii"))
        if request.args.get("wait", "").lower() in ("1", "true", "yes"):
            try:
                result.get(timeout=WAIT_TIMEOUT_S, propagate=False)
            except ResultTimeout:
                pass  # still running: answer 202 as without ?wait
            else:
                body = _task_json(result)
                return jsonify(body), 200 if body["error"] is None else 500
        url = url_for("get_task", task_id=result.id, _external=True)
        return (
            jsonify(task_id=result.id, status="queued", status_url=url),
            202,
            {"Location": url},
        )

    @app.get("/api/task/<task_id>")
    def get_task(task_id: str):
        return jsonify(_task_json(AsyncResult(task_id, app=celery_app)))

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app
