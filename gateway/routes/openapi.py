"""OpenAPI fragments more than one route declares: a Server-Sent Events
answer, a multipart upload's body."""

from __future__ import annotations

from typing import Any


def sse_response(description: str) -> dict[int | str, dict[str, Any]]:
    """The `responses` entry of a route that answers a text/event-stream."""
    return {
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": description,
        }
    }


def multipart_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The `requestBody` of a multipart/form-data upload with these fields."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
