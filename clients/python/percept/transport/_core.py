"""The one engine under every client: operations are written once, sans-IO.

An operation is a generator: it yields effects and gets their answers back -
a transport's request (run by that transport's I/O; one that `opens` a
stream answers a handle to read with `Next` and end with `Close`, which the
driver does if the operation did not), `Sleep`, `Item` (a value for the
caller of a streaming operation) or `Defer` (an operation to run if the
caller abandons this one, such as cancelling a task whose frames nobody
reads any more) - and returns its result. `run`/`iterate` drive an operation
synchronously, `arun`/`aiterate` under asyncio; `install` turns a list of
operations into the methods of a client class, sync or async. So retries,
deadlines, idempotency and paging are said here once, and each operation
(what it sends, what it reads back) once in its transport's module.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from percept.errors import PerceptError
from percept.retry import Deadline, RetryPolicy

Op = Generator[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Item:
    """One value for the caller of a streaming operation."""

    value: Any


@dataclass(frozen=True, slots=True)
class Defer:
    """Run `op()` if the caller stops before the operation ends."""

    op: Callable[[], Op]


@dataclass(frozen=True, slots=True)
class Next:
    """The stream's next item, None at its end."""

    handle: Any


@dataclass(frozen=True, slots=True)
class Close:
    handle: Any


def stream(fn: Callable[..., Op]) -> Callable[..., Op]:
    """Mark an operation whose Items are its result (an iterator for the caller)."""
    fn.streams = True  # type: ignore[attr-defined]
    return fn


# --- retries, deadlines and paging, for every operation ------------------------------------


def next_delay(
    error: PerceptError,
    attempt: int,
    deadline: Deadline,
    retry: RetryPolicy,
    conflict: bool = False,
) -> float:
    """Seconds to wait before the next try; raises `error` when there is none."""
    if not retry.retryable(error, conflict=conflict):
        raise error
    delay = retry.delay(attempt, error.retry_after)
    if delay is None or not deadline.allows(delay):
        raise error
    return delay


def retried(
    effect: Any, retry: RetryPolicy, deadline: Deadline, conflict: bool = False,
    answered: bool = False,
) -> Op:  # fmt: skip
    """Perform `effect` until it answers, retrying what `retry` says is worth it
    (with backoff and the server's Retry-After) within `deadline`. `answered`:
    retry only what the server answered (429, 502/503: nothing was done), never
    a network error, after which a request that stores something may be done."""
    for attempt in itertools.count(1):
        try:
            return (yield effect)
        except PerceptError as error:
            if answered and error.status is None:
                raise
            delay = next_delay(error, attempt, deadline, retry, conflict)
        yield Sleep(delay)


def resumed(
    open_: Callable[[], Any], read: Callable[[Any], Op], deadline: Deadline, retry: RetryPolicy
) -> Op:
    """A stream reopened where it broke: `open_()` is the effect that (re)opens it,
    `read(handle)` reads it (its Items pass through) and returns True once the
    stream is done (False: open it again at once). A break is retried as `retry`
    says, the count starting afresh whenever items came through."""
    attempt = 0
    while True:
        attempt += 1
        handle, seen = None, []
        try:
            handle = yield open_()
            done = yield from relay(read(handle), functools.partial(_seen, seen))
            yield Close(handle)
            if done:
                return
            continue
        except PerceptError as exc:
            error = exc
        if handle is not None:
            yield Close(handle)
        yield Sleep(next_delay(error, 1 if seen else attempt, deadline, retry))
        attempt = 0 if seen else attempt


def _seen(seen: list[Any], item: Any) -> Any:
    seen.append(item)
    return item


@stream
def walk(fetch: Callable[[str | None], Op], items: str, next_field: str = "next_page_token"):
    """Yield every item of every page `fetch(token)` returns, until a page has
    no next token (`page.<next_field>`: a page token, or a cursor)."""
    token = None
    while True:
        page = yield from fetch(token)
        for item in getattr(page, items):
            yield Item(item)
        if not (token := getattr(page, next_field)):
            return


@dataclass(frozen=True, slots=True)
class Stop:
    """What a `relay` callback returns to end the relay with `value`."""

    value: Any


SKIP: Any = object()  # what a `relay` callback returns to pass an item over


class _Run:
    """One operation in progress: steps it to its next effect (it gets `answer`
    back, or `error` thrown in), keeps the streams it opened, what it asked to
    undo, and whether it ended on its own (a value or an API error)."""

    def __init__(self, op: Op) -> None:
        self.op = op
        self.deferred: list[Callable[[], Op]] = []
        self.finished = False
        self.value: Any = None
        self.answer: Any = None
        self.error: PerceptError | None = None
        self.streams: list[Any] = []

    def step(self) -> Any:
        """The operation's next effect; None once it has its value."""
        answer, error, self.answer, self.error = self.answer, self.error, None, None
        try:
            return self.op.throw(error) if error is not None else self.op.send(answer)
        except StopIteration as stop:
            self.finished, self.value = True, stop.value
            return None
        except PerceptError:
            self.finished = True  # the server's answer: nothing to undo
            raise

    def next(self) -> Any:
        """The next effect for the driver, keeping what it defers."""
        while isinstance(effect := self.step(), Defer):
            self.deferred.append(effect.op)
        return effect

    def got(self, effect: Any, answer: Any) -> None:
        self.answer = answer
        if getattr(effect, "opens", False):
            self.streams.append(answer)
        elif isinstance(effect, Close):
            self.streams.remove(effect.handle)

    def undo(self) -> list[Callable[[], Op]]:
        """What to run now that the caller left: nothing when it ended on its own."""
        self.op.close()
        return [] if self.finished else self.deferred


def relay(op: Op, on_item: Callable[[Any], Any]) -> Op:
    """Run `op` inside another operation: its effects pass through; each of its
    Items goes to `on_item`, whose answer is yielded as an Item instead (SKIP:
    none), or ends the relay when it is a Stop."""
    inner = _Run(op)
    try:
        while (effect := inner.step()) is not None:
            if not isinstance(effect, Item):
                try:
                    inner.answer = yield effect
                except PerceptError as exc:
                    inner.error = exc
            elif isinstance(out := on_item(effect.value), Stop):
                return out.value
            elif out is not SKIP:
                yield Item(out)
        return inner.value
    finally:
        op.close()


# --- the drivers ------------------------------------------------------------------------


def iterate(op: Op, io: Any, state: _Run | None = None) -> Iterator[Any]:
    """Run an operation synchronously, yielding its Items (its value: `state`'s).
    `io.perform(effect)` runs a transport's effects (`Close(handle)` too, for
    the streams an operation left open)."""
    state = state or _Run(op)
    try:
        while (effect := state.next()) is not None:
            if isinstance(effect, Item):
                yield effect.value
            elif isinstance(effect, Sleep):
                time.sleep(effect.seconds)
            else:
                try:
                    state.got(effect, io.perform(effect))
                except PerceptError as exc:
                    state.error = exc
    finally:
        for handle in state.streams:
            io.perform(Close(handle))
        for undo in state.undo():
            with contextlib.suppress(PerceptError):
                run(undo(), io)


def run(op: Op, io: Any) -> Any:
    """Run an operation synchronously to its value."""
    state = _Run(op)
    for _ in iterate(op, io, state):
        pass
    return state.value


async def aiterate(op: Op, io: Any, state: _Run | None = None) -> AsyncIterator[Any]:
    """`iterate` under asyncio (`io.perform` awaited)."""
    state = state or _Run(op)
    try:
        while (effect := state.next()) is not None:
            if isinstance(effect, Item):
                yield effect.value
            elif isinstance(effect, Sleep):
                await asyncio.sleep(effect.seconds)
            else:
                try:
                    state.got(effect, await io.perform(effect))
                except PerceptError as exc:
                    state.error = exc
    finally:
        for handle in state.streams:
            await io.perform(Close(handle))
        for undo in state.undo():
            with contextlib.suppress(PerceptError):
                await asyncio.shield(arun(undo(), io))


async def arun(op: Op, io: Any) -> Any:
    """Run an operation under asyncio to its value."""
    state = _Run(op)
    async for _ in aiterate(op, io, state):
        pass
    return state.value


class Closing:
    """`with client:` for a client with `close()`, `async with` for one with `aclose()`."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()  # type: ignore[attr-defined]


# --- operations -> client methods ---------------------------------------------------------


def install(cls: type, ops: list[Callable[..., Op]], asynchronous: bool) -> type:
    """Give `cls` a method per operation (named as the operation), run by the
    sync or the asyncio driver with the instance as its I/O."""
    for fn in ops:
        setattr(cls, fn.__name__, _method(fn, asynchronous))
    return cls


def _method(fn: Callable[..., Op], asynchronous: bool) -> Callable[..., Any]:
    """A streaming operation's method returns an iterator (an async one under
    asyncio) of its Items; any other's its value (a coroutine under asyncio)."""
    streams = getattr(fn, "streams", False)
    if asynchronous and not streams:

        async def method(self, *args, **kwargs):
            return await arun(fn(self, *args, **kwargs), self)

    else:
        drive = (aiterate if asynchronous else iterate) if streams else run

        def method(self, *args, **kwargs):
            return drive(fn(self, *args, **kwargs), self)

    return functools.wraps(fn)(method)
