"""The per-process budget of upload bytes in flight (gateway/inflight.py): big
uploads wait their turn and time out with 503, small ones never wait, and every
reservation is given back, also when its request is cancelled or fails."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from gateway.errors import ApiError
from gateway.inflight import UploadBudget
from gateway.settings import GatewaySettings

MiB = 1 << 20


def budget(size: int = 10 * MiB, wait_s: float = 5.0) -> UploadBudget:
    return UploadBudget(size, wait_s, small=MiB, largest=size)


def test_big_uploads_wait_their_turn_in_order():
    async def main():
        b = budget()
        assert await b.acquire(6 * MiB) == 6 * MiB
        second = asyncio.ensure_future(b.acquire(6 * MiB))
        third = asyncio.ensure_future(b.acquire(3 * MiB))  # fits, but comes after second
        await asyncio.sleep(0.01)
        assert not second.done() and not third.done()  # first come, first served
        b.release(6 * MiB)
        assert await second == 6 * MiB and await third == 3 * MiB
        assert b.used == 9 * MiB and b.peak == 9 * MiB

    asyncio.run(main())


def test_a_full_budget_answers_503_with_retry_after_and_frees_the_line():
    async def main():
        b = budget(wait_s=0.05)
        await b.acquire(8 * MiB)
        with pytest.raises(ApiError) as refused:
            await b.acquire(4 * MiB)
        assert refused.value.status == 503 and refused.value.code == "uploads_busy"
        assert refused.value.headers["Retry-After"]
        assert "GATEWAY_MAX_INFLIGHT_UPLOAD_BYTES" in refused.value.message
        assert b.used == 8 * MiB and not b._waiters
        assert await b.acquire(2 * MiB) == 2 * MiB  # room left: no one waits before it

    asyncio.run(main())


def test_small_uploads_never_wait_behind_big_ones():
    async def main():
        b = budget()
        await b.acquire(10 * MiB)
        big = asyncio.ensure_future(b.acquire(5 * MiB))
        await asyncio.sleep(0.01)
        assert await asyncio.wait_for(b.acquire(100_000, wait=False), 1) == 100_000
        assert not big.done() and b.used == 10 * MiB + 100_000
        b.release(10 * MiB + 100_000)
        assert await big == 5 * MiB

    asyncio.run(main())


def test_a_cancelled_waiter_gives_back_its_place():
    async def main():
        b = budget()
        await b.acquire(9 * MiB)
        blocked = asyncio.ensure_future(b.acquire(8 * MiB))  # at the head of the line
        behind = asyncio.ensure_future(b.acquire(1 * MiB))
        await asyncio.sleep(0.01)
        assert not behind.done()
        blocked.cancel()  # the client went away while waiting
        assert await behind == MiB  # the line moves on at once
        with pytest.raises(asyncio.CancelledError):
            await blocked
        assert b.used == 10 * MiB
        b.release(10 * MiB)
        assert b.used == 0 and not b._waiters

    asyncio.run(main())


def test_an_upload_larger_than_the_budget_reserves_the_whole_budget():
    async def main():
        b = budget()
        assert await b.acquire(10 * MiB + 64 * 1024) == 10 * MiB  # multipart overhead
        b.release(10 * MiB)
        assert b.used == 0

    asyncio.run(main())


def test_the_budget_must_fit_the_largest_upload():
    with pytest.raises(ValidationError, match="max_inflight_upload_bytes"):
        GatewaySettings(max_inflight_upload_bytes=32 * MiB, max_video_bytes=60 * MiB)
    assert GatewaySettings(max_inflight_upload_bytes=0).max_inflight_upload_bytes == 0
    assert GatewaySettings().max_inflight_upload_bytes >= GatewaySettings().max_video_bytes


async def _serve(b: UploadBudget, headers, bodies, app):
    """Run `app` through the budget's ASGI wrapper with a body in `bodies`."""
    sent: list[dict] = []
    messages = iter([{"type": "http.request", "body": body, "more_body": True} for body in bodies])

    async def receive():
        return next(messages, {"type": "http.request", "body": b"", "more_body": False})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": headers}
    await b.serve(scope, receive, send, app)
    return sent


def test_the_asgi_wrapper_releases_on_success_error_and_chunked_growth():
    async def main():
        b = budget()
        seen: list[int] = []

        async def reads_all(scope, receive, send):
            while (await receive())["more_body"]:
                seen.append(b.used)

        await _serve(b, [(b"content-length", b"3145728")], [b"x"], reads_all)
        assert seen == [3 * MiB] and b.used == 0 and b.peak == 3 * MiB

        seen.clear()  # chunked: reserved step by step as it is read
        await _serve(b, [], [b"x" * 700_000] * 3, reads_all)
        assert seen == [MiB, 2 * MiB, 3 * MiB] and b.used == 0

        async def fails(scope, receive, send):
            await receive()
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await _serve(b, [(b"content-length", b"5000000")], [b"x"], fails)
        assert b.used == 0

        await b.acquire(10 * MiB)  # full: a declared big upload gets 503 without running
        b.wait_s = 0.05
        sent = await _serve(b, [(b"content-length", b"5000000")], [b"x"], fails)
        assert sent[0]["status"] == 503
        assert (b"retry-after", b"2") in sent[0]["headers"]
        assert b.used == 10 * MiB

    asyncio.run(main())


def test_a_chunked_upload_past_a_full_budget_is_told_503_as_it_reads():
    async def main():
        b = budget(wait_s=0.05)
        await b.acquire(9 * MiB)  # others hold most of it
        raised: list[ApiError] = []

        async def reads_all(scope, receive, send):
            try:
                while (await receive())["more_body"]:
                    pass
            except ApiError as exc:  # what read_upload passes on: the route answers it
                raised.append(exc)

        await _serve(b, [], [b"x" * 700_000] * 3, reads_all)
        assert raised and raised[0].status == 503 and raised[0].code == "uploads_busy"
        assert b.used == 9 * MiB  # its first step (under the small size) given back too

    asyncio.run(main())
