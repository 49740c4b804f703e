"""Reading a request body under a byte limit (catalogue B1, B2).

This module owns how many bytes a request may make the hub hold: the limit is enforced on the raw bytes
while they arrive (Content-Length, chunked or no length at all) and again on the decompressed bytes while
they are produced, so neither a large upload nor a compression bomb is ever buffered whole.

It expects aiohttp's own request decompression to be off (`web.AppRunner(app, auto_decompress=False)`), so
`request.content` yields the bytes exactly as sent and `LimitedDecoder` is the only decompressor.
`LimitedDecoder` is pure and synchronous; `read_body` only feeds it from the request stream.
"""

from __future__ import annotations

import importlib
import zlib
from typing import Any, Final

from aiohttp import hdrs, web

from service.errors import Code, HandoverError

READ_CHUNK_BYTES: Final = 65536
"""Raw bytes taken from the request stream at a time."""

SUPPORTED_ENCODINGS: Final = ("identity", "gzip", "x-gzip", "deflate", "br")
"""Content-Encoding values understood here; `br` only while the Brotli package (>= 1.2) is importable."""


def _load_brotli() -> Any:
    """The `brotli` module if it is installed and can bound its output (Brotli >= 1.2), else None."""
    try:
        module = importlib.import_module("brotli")  # optional dependency without type hints
    except ImportError:
        return None
    if not hasattr(module.Decompressor, "can_accept_more_data"):
        return None  # before 1.2 the decoder cannot cap its output, so it cannot be used safely
    return module


_brotli: Any = _load_brotli()

# Brotli rounds `output_buffer_limit` up to whole output blocks (32 KiB at first, then growing), so a single
# call asked for "the rest of the limit" can return about twice that. Asking in small steps keeps the overshoot
# to one first-size block.
_BROTLI_STEP: Final = 16 * 1024

_TOKEN_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~, ")


def _too_large(limit: int, *, decompressed: bool) -> HandoverError:
    if decompressed:
        return HandoverError(Code.PAYLOAD_TOO_LARGE, f"the request body decompresses to more than {limit} bytes")
    return HandoverError(Code.PAYLOAD_TOO_LARGE, f"the request body is larger than {limit} bytes")


def _corrupt() -> HandoverError:
    return HandoverError(Code.INVALID_JSON, "the body could not be decompressed as declared by Content-Encoding")


def _unsupported(header: str) -> HandoverError:
    shown = "".join(ch for ch in header[:40] if ch in _TOKEN_CHARS).strip() or "(unprintable)"
    return HandoverError(
        Code.UNSUPPORTED_MEDIA_TYPE, f"Content-Encoding {shown} is not supported; use gzip, deflate or identity"
    )


def _choose_encoding(header: str | None) -> str:
    """The one coding to undo for a Content-Encoding header value; refuses unknown and stacked codings."""
    if header is None:
        return "identity"
    codings = [token.strip().lower() for token in header.split(",")]
    codings = [coding for coding in codings if coding and coding != "identity"]
    if not codings:
        return "identity"
    if len(codings) > 1:
        raise _unsupported(header)
    coding = codings[0]
    if coding in {"gzip", "x-gzip"}:
        return "gzip"
    if coding == "deflate":
        return "deflate"
    if coding == "br" and _brotli is not None:
        return "br"
    raise _unsupported(header)


def _is_zlib_header(first_two: bytes) -> bool:
    """RFC 1950 header: compression method 8, window at most 32 KiB, and the FCHECK multiple of 31."""
    cmf, flg = first_two[0], first_two[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and ((cmf << 8) | flg) % 31 == 0


class LimitedDecoder:
    """Undoes one Content-Encoding incrementally, never holding more than `limit` + 1 decoded bytes.

    (For Brotli, up to one 32 KiB output block more: its decoder caps output only in whole blocks.)

    Feed raw chunks with `feed`, then call `finish` for the whole decoded body. Raises `HandoverError`:
    UNSUPPORTED_MEDIA_TYPE (at construction) for an unknown or stacked coding, PAYLOAD_TOO_LARGE as soon as
    the decoded size passes `limit`, and INVALID_JSON (400) for corrupt or truncated compressed data.
    The raw (compressed) size is the caller's to limit; `read_body` does so.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        self.encoding: Final = _choose_encoding(content_encoding)
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._finished = False
        self._zlib: Any = None  # zlib's Decompress type is not public
        self._undecided = b""  # deflate: bytes held until the zlib header can be recognised
        self._brotli: Any = None
        if self.encoding == "gzip":
            self._zlib = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif self.encoding == "br":
            self._brotli = _brotli.Decompressor()

    @property
    def size(self) -> int:
        """Decoded bytes produced so far."""
        return self._size

    def feed(self, chunk: bytes) -> None:
        """Decode one raw chunk; raises PAYLOAD_TOO_LARGE or INVALID_JSON as described on the class."""
        if self._finished:
            raise RuntimeError("LimitedDecoder.feed called after finish")
        if not chunk:
            return
        if self.encoding == "identity":
            self._emit(chunk)
        elif self.encoding == "br":
            self._unbrotli(chunk)
        elif self._zlib is None:
            self._undecided += chunk
            if len(self._undecided) >= 2:
                self._start_deflate()
        else:
            self._inflate(chunk)

    def finish(self) -> bytes:
        """The whole decoded body; refuses a compressed stream that has not reached its end marker."""
        if self._finished:
            raise RuntimeError("LimitedDecoder.finish called twice")
        self._finished = True
        if self.encoding == "br":
            if not self._brotli.is_finished():
                raise _corrupt()
        elif self.encoding != "identity":
            if self._zlib is None:  # deflate with fewer than two bytes: not even an empty stream
                raise _corrupt()
            if not self._zlib.eof:
                raise _corrupt()
        body = b"".join(self._parts)
        self._parts = []
        return body

    def _emit(self, decoded: bytes) -> None:
        self._size += len(decoded)
        if self._size > self._limit:
            self._parts = []
            raise _too_large(self._limit, decompressed=self.encoding != "identity")
        if decoded:
            self._parts.append(decoded)

    def _room(self) -> int:
        """Most bytes the next decompression step may produce: one past the limit, so overflow is seen."""
        return self._limit + 1 - self._size

    def _start_deflate(self) -> None:
        # "deflate" means zlib-wrapped (RFC 9110 §8.4.1.2), but some senders emit raw RFC 1951 data.
        wbits = zlib.MAX_WBITS if _is_zlib_header(self._undecided) else -zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits=wbits)
        pending, self._undecided = self._undecided, b""
        self._inflate(pending)

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._zlib.eof:
                if self.encoding != "gzip":
                    raise _corrupt()  # data after the end of a deflate stream
                self._zlib = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # the next gzip member
            # Capped at one byte past the limit: zlib stops early only when that byte appears, which refuses, so
            # no decoded output is ever left pending inside zlib with no input to fetch it.
            try:
                decoded = self._zlib.decompress(data, self._room())
            except zlib.error:
                raise _corrupt() from None
            self._emit(decoded)
            rest = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
            if not decoded and len(rest) >= len(data) and not self._zlib.eof:
                raise _corrupt()  # no progress: never loop forever on malformed input
            data = rest

    def _unbrotli(self, data: bytes) -> None:
        decoder = self._brotli
        if decoder.is_finished():
            raise _corrupt()  # data after the end of the brotli stream
        try:
            self._emit(decoder.process(data, output_buffer_limit=min(self._room(), _BROTLI_STEP)))
            # Drain: output can still be pending when `can_accept_more_data()` is already true, so stop only
            # at the end of the stream or when a call yields nothing because more input is needed.
            while not decoder.is_finished():
                decoded = decoder.process(b"", output_buffer_limit=min(self._room(), _BROTLI_STEP))
                if not decoded:
                    if decoder.can_accept_more_data():
                        break
                    raise _corrupt()  # neither output nor room for input: never loop forever
                self._emit(decoded)
        except _brotli.error:
            raise _corrupt() from None


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """Read and decode the whole request body, holding at most `limit` (+1) bytes of it at any time.

    Promises: the body with its Content-Encoding undone, at most `limit` bytes long. Refuses with
    `HandoverError`: PAYLOAD_TOO_LARGE if Content-Length exceeds `limit` (before reading anything), if more
    than `limit` raw bytes arrive (chunked or unlengthed bodies), or if decoding yields more than `limit`
    bytes; UNSUPPORTED_MEDIA_TYPE for a coding other than identity, gzip, x-gzip, deflate or (when Brotli is
    installed) br, or for stacked codings, also before reading; INVALID_JSON for corrupt or truncated
    compressed data or a body the client cut short; BAD_HEADER for a Content-Length that is not a number.

    Requires aiohttp's automatic decompression to be off, so `request.content` carries the bytes as sent.
    """
    try:
        declared = request.content_length
    except ValueError:
        raise HandoverError(Code.BAD_HEADER, "Content-Length is not a whole number") from None
    if declared is not None and declared > limit:
        raise _too_large(limit, decompressed=False)
    encodings = request.headers.getall(hdrs.CONTENT_ENCODING, [])
    decoder = LimitedDecoder(",".join(encodings) if encodings else None, limit)
    received = 0
    try:
        async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
            received += len(chunk)
            if received > limit:
                raise _too_large(limit, decompressed=False)
            decoder.feed(chunk)
    except web.RequestPayloadError:
        raise HandoverError(Code.INVALID_JSON, "the request body was cut short or malformed in transfer") from None
    return decoder.finish()
