"""Walking a paged listing (collections, faces) one item at a time, for every client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any


def walk(fetch: Callable[[str | None], Any], items: str) -> Iterator[Any]:
    """Yield `page.<items>` of every page `fetch(page_token)` returns, until one has no next token."""
    token = None
    while True:
        page = fetch(token)
        yield from getattr(page, items)
        if not page.next_page_token:
            return
        token = page.next_page_token


async def awalk(fetch: Callable[[str | None], Awaitable[Any]], items: str) -> AsyncIterator[Any]:
    """`walk` for coroutine fetchers."""
    token = None
    while True:
        page = await fetch(token)
        for item in getattr(page, items):
            yield item
        if not page.next_page_token:
            return
        token = page.next_page_token
