"""Walking a paged listing (collections, faces) one item at a time, for every client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any


def walk(
    fetch: Callable[[str | None], Any], items: str, next_field: str = "next_page_token"
) -> Iterator[Any]:
    """Yield `page.<items>` of every page `fetch(token)` returns, until one has no
    next token (`page.<next_field>`: a page token, or the task list's cursor)."""
    token = None
    while True:
        page = fetch(token)
        yield from getattr(page, items)
        token = getattr(page, next_field)
        if not token:
            return


async def awalk(
    fetch: Callable[[str | None], Awaitable[Any]], items: str, next_field: str = "next_page_token"
) -> AsyncIterator[Any]:
    """`walk` for coroutine fetchers."""
    token = None
    while True:
        page = await fetch(token)
        for item in getattr(page, items):
            yield item
        token = getattr(page, next_field)
        if not token:
            return
