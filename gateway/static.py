"""Static files the gateway serves itself (the console's page, the API docs'
assets), counted in the HTTP metrics under one route label per mount rather
than one per file, with the cache policy their mount asks for."""

from __future__ import annotations

from types import SimpleNamespace

from starlette.staticfiles import StaticFiles


class LabelledFiles(StaticFiles):
    """StaticFiles whose every response carries `cache_control` and whose
    requests the metrics count under the route `label`."""

    def __init__(self, *, label: str, cache_control: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.route = SimpleNamespace(path=label)
        self.cache_control = cache_control

    async def __call__(self, scope, receive, send) -> None:
        scope["route"] = self.route
        await super().__call__(scope, receive, send)

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = self.cache_control
        return response
