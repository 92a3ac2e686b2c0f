"""The benchmarks' raw HTTP load generator against a real local server: it must
count a task only when its result came back, whatever framing the server uses,
or its figures mean nothing (bench/http_load.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench import http_load


async def serve(answers: list[bytes]):
    """A server on a free port answering each request with the next canned
    response; it records the request lines it saw."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            line = await reader.readline()
            if not line:
                break
            length = 0
            while (header := await reader.readline()) != b"\r\n":
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            await reader.readexactly(length)
            seen.append(line.strip())
            answer = answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if b"Connection: close" in answer:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def response(status: str, body: dict, extra: str = "") -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(data)}\r\n{extra}\r\n".encode() + data


def chunked(status: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    half = len(data) // 2
    return (
        f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + f"{half:x}\r\n".encode()
        + data[:half]
        + f"\r\n{len(data) - half:x}\r\n".encode()
        + data[half:]
        + b"\r\n0\r\n\r\n"
    )


def test_a_task_counts_only_when_its_result_came_back():
    async def run():
        answers = [
            response("200 OK", {"status": "succeeded", "result": {"faces": []}}),
            chunked("200 OK", {"status": "succeeded", "result": {"faces": [{"box": {}}]}}),
            response("202 Accepted", {"task_id": "t1", "status": "queued"}),
            response("200 OK", {"status": "failed", "result": None}),
            response("422 Unprocessable Entity", {"error": {"code": "invalid_image"}}),
        ]
        server, port, _ = await serve(answers)
        async with server:
            conn = http_load.Connection("127.0.0.1", port)
            request = http_load.upload_request("127.0.0.1", port, "/x", b"jpeg", "wait=true")
            got = [await conn.exchange(request) for _ in range(5)]
            conn.close()
        return [(status, http_load.finished(status, body)) for status, body in got]

    assert asyncio.run(run()) == [
        (200, True),
        (200, True),
        (202, False),
        (200, False),
        (422, False),
    ]


def test_a_connection_the_server_closed_is_reopened():
    async def run():
        answers = [
            response("200 OK", {"result": {"n": 1}}, "Connection: close\r\n"),
            response("200 OK", {"result": {"n": 2}}),
        ]
        server, port, seen = await serve(answers)
        async with server:
            conn = http_load.Connection("127.0.0.1", port)
            request = http_load.upload_request("127.0.0.1", port, "/api/detect/face/image", b"x")
            bodies = [json.loads((await conn.exchange(request))[1]) for _ in range(2)]
            conn.close()
        return bodies, seen

    bodies, seen = asyncio.run(run())
    assert [b["result"]["n"] for b in bodies] == [1, 2]
    assert seen == [b"POST /api/detect/face/image HTTP/1.1"] * 2


def test_async_mode_polls_until_the_task_has_its_result():
    async def run():
        answers = [
            response("202 Accepted", {"task_id": "abc", "status": "queued"}),
            response("200 OK", {"task_id": "abc", "status": "running", "result": None}),
            response("200 OK", {"task_id": "abc", "status": "succeeded", "result": {"x": 1}}),
        ]
        server, port, seen = await serve(answers)
        async with server:
            request = http_load.upload_request("127.0.0.1", port, "/api/detect/face/image", b"x")
            one = http_load.async_mode("127.0.0.1", port, request, poll_s=0.001)
            conn = http_load.Connection("127.0.0.1", port)
            outcome = await one(conn)
            conn.close()
        return outcome, seen

    (ok, requests, why), seen = asyncio.run(run())
    assert ok and requests == 3 and why == ""
    assert seen[1:] == [b"GET /api/task/abc HTTP/1.1"] * 2


def test_round_trips_refuse_an_answer_without_the_result():
    async def run():
        answers = [response("202 Accepted", {"task_id": "t", "status": "queued"})]
        server, port, _ = await serve(answers)
        async with server:
            request = http_load.upload_request("127.0.0.1", port, "/x", b"x", "wait=true")
            await http_load.round_trips("127.0.0.1", port, request, n=1, warmup=0)

    with pytest.raises(RuntimeError, match="HTTP 202"):
        asyncio.run(run())
