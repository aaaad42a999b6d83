"""Files coming into the sandbox: multipart forms read as a stream, and files fetched by url.

Owns the size limits on the way in (Omnidesk's 25 MB a file, 50 MB a message; 1 MB a text
field), enforced while reading, so an oversized upload is refused without ever being buffered
whole. Used by the Omnidesk API (staff replies and notes with `message[attachments][N]`,
`attachment_urls`) and by the playground (the customer's "Attach file").

GUESS: `attachment_urls` are fetched by the sandbox, like Omnidesk does, with the same limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

import aiohttp
from aiohttp import hdrs, web
from aiohttp.multipart import BodyPartReader
from yarl import URL

from omnibot.sandbox.records import MAX_FILE_BYTES, MAX_MESSAGE_FILES_BYTES, ApiError, NewFile
from omnibot.sandbox.wire import guess_mime

MAX_FIELD_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(kw_only=True, slots=True)
class FormFile:
    field: str  # the form field it came under (`message[attachments][0]`, `file`)
    file: NewFile


@dataclass(kw_only=True, slots=True)
class Form:
    """A multipart body: its text fields in order (a name may repeat) and its files."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FormFile] = field(default_factory=list)

    def first(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)


async def read_part(part: BodyPartReader, limit: int, code: str) -> bytes:
    """Read a multipart part, refusing as soon as it exceeds `limit` (never buffering more)."""
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise ApiError(400, code)
    return bytes(data)


def _mime_of(part: BodyPartReader, filename: str) -> str:
    declared = part.headers.get(hdrs.CONTENT_TYPE, "").split(";")[0].strip()
    return declared if declared and declared != "application/octet-stream" else guess_mime(filename)


async def read_form(request: web.Request) -> Form:
    """The multipart body, files limited per file and all together; 400 for anything else."""
    if request.content_type != "multipart/form-data":
        raise ApiError(400, "content_type_not_supported", detail="send multipart/form-data")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError):
        raise ApiError(400, "invalid_multipart") from None
    form = Form()
    files_total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "invalid_multipart")
        name = part.name or ""
        if part.filename is not None:
            limit = min(MAX_FILE_BYTES, MAX_MESSAGE_FILES_BYTES - files_total)
            data = await read_part(part, limit, "file_too_large")
            files_total += len(data)
            new = NewFile(name=part.filename, content=data, mime_type=_mime_of(part, part.filename))
            form.files.append(FormFile(field=name, file=new))
            continue
        text = await read_part(part, MAX_FIELD_BYTES, "field_too_large")
        try:
            form.fields.append((name, text.decode(part.get_charset("utf-8"))))
        except (UnicodeDecodeError, LookupError):
            raise ApiError(400, "invalid_multipart", detail=f"{name}: not text") from None
    return form


async def fetch_files(urls: list[str]) -> list[NewFile]:
    """Download `attachment_urls` the way Omnidesk does, with the same limits."""
    files: list[NewFile] = []
    try:
        async with aiohttp.ClientSession(timeout=_FETCH_TIMEOUT) as session:
            for url in urls:
                async with session.get(url) as response:
                    if response.status != 200:
                        raise ApiError(400, "attachment_url_unreachable", detail=f"{url}: {response.status}")
                    data = bytearray()
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        data += chunk
                        if len(data) > MAX_FILE_BYTES:
                            raise ApiError(400, "file_too_large")
                name = PurePosixPath(URL(url).path).name or "file"
                mime = response.content_type if response.content_type != "application/octet-stream" else ""
                files.append(NewFile(name=name, content=bytes(data), mime_type=mime or guess_mime(name)))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ApiError(400, "attachment_url_unreachable", detail=str(exc)) from None
    return files
