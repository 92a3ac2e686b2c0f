"""Reading a multipart upload once, streamed, with its byte limit enforced while
reading (Content-Length or chunked alike): the file's bytes land in one buffer,
the other fields in a dict, and nothing is spooled to disk. Over the limit the
read stops at once with 413."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from gateway.errors import ApiError
from gateway.protoform import given_twice

FILE_FIELD = "file"
MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # headers and boundaries around the file


@dataclass
class Upload:
    """A parsed upload: the file's bytes, its declared content type and filename,
    and the form's other (text) fields."""

    data: bytes
    content_type: str
    filename: str
    fields: dict[str, str] = field(default_factory=dict)


class _Collector:
    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.file = bytearray()
        self.file_type = ""
        self.filename = ""
        self.has_file = False
        self.fields: dict[str, str] = {}
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part: bytearray | None = None
        self._is_file = False
        self._name = ""

    # python-multipart callbacks ---------------------------------------------------
    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        self._is_file = self._name == FILE_FIELD
        if self._is_file:
            if self.has_file:
                raise ApiError(422, "invalid_request", "send one file per request in field 'file'")
            self.has_file = True
            self.filename = (filename or b"").decode("utf-8", "replace")
            self.file_type = (
                self._headers.get(b"content-type", b"application/octet-stream")
                .decode("latin-1")
                .split(";")[0]
                .strip()
                .lower()
            )
            self._part = self.file
        elif filename is not None:
            raise ApiError(
                422,
                "invalid_request",
                f"unexpected file in field {self._name!r}: send the {self.what} in field 'file'",
                fields=[self._name],
            )
        else:
            if len(self.fields) >= MAX_FIELDS:
                raise ApiError(422, "invalid_request", f"more than {MAX_FIELDS} form fields")
            self._part = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        part += data[start:end]
        if self._is_file:
            if len(part) > self.limit:
                raise ApiError(
                    413,
                    "too_large",
                    f"file is over the {self.what} limit of {self.limit} bytes",
                )
        elif len(part) > MAX_FIELD_BYTES:
            raise ApiError(
                422,
                "invalid_request",
                f"form field {self._name!r} is over {MAX_FIELD_BYTES} bytes",
                fields=[self._name],
            )

    def on_part_end(self) -> None:
        if not self._is_file and self._part is not None:
            if self._name in self.fields:
                raise given_twice(self._name, "twice as a form field")
            self.fields[self._name] = self._part.decode("utf-8", "replace")
        self._part = None


async def read_upload(request: Request, what: str, limit: int) -> Upload:
    """Parse a multipart/form-data request carrying `what` (an image or a
    video) in the field 'file'. Raises ApiError 413/415/422 for the caller's
    mistakes."""
    length = request.headers.get("content-length")
    if (
        length
        and length.isascii()
        and length.isdigit()
        and int(length) > limit + MULTIPART_OVERHEAD
    ):
        raise ApiError(
            413, "too_large", f"upload is {int(length)} bytes; the {what} limit is {limit} bytes"
        )
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type == b"application/x-www-form-urlencoded":
        raise ApiError(
            422,
            "invalid_request",
            f"field 'file' is required: the {what} to process, as a multipart file "
            "(send multipart/form-data)",
            fields=["file"],
        )
    if content_type != b"multipart/form-data" or not boundary:
        got = request.headers.get("content-type") or "no content type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send multipart/form-data with the {what} in the field 'file' (got {got})",
        )
    collector = _Collector(limit, what)
    callbacks = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    try:
        parser = MultipartParser(boundary, callbacks, max_size=limit + MULTIPART_OVERHEAD)
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except ApiError:
        raise
    except ClientDisconnect:
        raise ApiError(400, "invalid_request", "the client closed the upload early") from None
    except Exception:  # noqa: BLE001 - a malformed body is the caller's mistake
        raise ApiError(
            400,
            "invalid_request",
            "malformed multipart/form-data body: check the boundary and each part's headers",
        ) from None
    if not collector.has_file:
        raise ApiError(
            422,
            "invalid_request",
            f"field 'file' is required: the {what} to process, as a multipart file",
            fields=["file"],
        )
    if not collector.file:
        raise ApiError(422, "invalid_request", "field 'file' is empty", fields=["file"])
    return Upload(bytes(collector.file), collector.file_type, collector.filename, collector.fields)
