"""Reading a body under a byte limit: catalogue B1 (size) and B2 (compression bombs, unknown encodings).

`LimitedDecoder` is tested directly, with no server. A few `read_body` tests use a fake request (to prove
refusals happen before any byte is read) or a throw-away in-process aiohttp server started the way the service
starts its own, with `auto_decompress=False`. No database, no patient data.
"""

from __future__ import annotations

import gzip
import importlib.util
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from service.errors import Code, HandoverError
from service.http import body
from service.http.body import READ_CHUNK_BYTES, LimitedDecoder, read_body

MiB = 2**20
DOCUMENT = b'{"resourceType": "Bundle", "type": "message", "entry": [' + b'{"n": 1},' * 2000 + b'{"n": 2}]}'
HAS_BROTLI = importlib.util.find_spec("brotli") is not None


def decode(encoding: str | None, data: bytes, limit: int, *, chunk: int = READ_CHUNK_BYTES) -> bytes:
    decoder = LimitedDecoder(encoding, limit)
    for start in range(0, len(data), chunk):
        decoder.feed(data[start : start + chunk])
    return decoder.finish()


def refusal(encoding: str | None, data: bytes, limit: int, *, chunk: int = READ_CHUNK_BYTES) -> HandoverError:
    with pytest.raises(HandoverError) as caught:
        decode(encoding, data, limit, chunk=chunk)
    return caught.value


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def zero_blocks() -> bytes:
    """Raw deflate for 1 MiB of zeros ending in a full flush: byte-aligned, no back-references, not final.

    Copies of it can follow each other in one stream, so N copies decode to N MiB while costing ~1 KiB each.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(b"\0" * MiB) + compressor.flush(zlib.Z_FULL_FLUSH)


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
ZLIB_HEADER = b"\x78\xda"


def bomb_chunks(header: bytes, decoded_mib: int, *, blocks_per_chunk: int = 64) -> Iterator[bytes]:
    """A compressed stream that would decode to `decoded_mib` MiB of zeros, yielded in ~64 KiB raw chunks.

    Every raw chunk alone expands to 64 MiB, so a decoder without an output cap would balloon at once.
    The stream is never materialised, and its end marker is never reached by a decoder that refuses in time.
    """
    yield header
    chunk = zero_blocks() * blocks_per_chunk
    for _ in range(decoded_mib // blocks_per_chunk):
        yield chunk
    yield b"\x03\x00" + struct.pack("<II", 0, (decoded_mib * MiB) & 0xFFFFFFFF)


def feed_until_refused(decoder: LimitedDecoder, chunks: Iterable[bytes]) -> tuple[HandoverError, int, int]:
    """Feed chunks until a refusal; returns it, the raw bytes fed, and the peak traced memory."""
    fed = [0]

    def drain() -> None:
        for chunk in chunks:
            fed[0] += len(chunk)
            decoder.feed(chunk)
        decoder.finish()

    tracemalloc.start()
    try:
        with pytest.raises(HandoverError) as caught:
            drain()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value, fed[0], peak


# --- identity ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [None, "", "identity", "IDENTITY", " identity "])
def test_identity_passes_bytes_through(encoding: str | None) -> None:
    assert LimitedDecoder(encoding, 10 * MiB).encoding == "identity"
    assert decode(encoding, DOCUMENT, 10 * MiB, chunk=1000) == DOCUMENT


def test_b1_identity_body_exactly_at_limit_is_accepted() -> None:
    assert decode(None, DOCUMENT, len(DOCUMENT), chunk=777) == DOCUMENT


def test_b1_identity_body_one_byte_over_limit_is_refused_while_feeding() -> None:
    decoder = LimitedDecoder(None, len(DOCUMENT) - 1)
    decoder.feed(DOCUMENT[:-1])
    with pytest.raises(HandoverError) as caught:
        decoder.feed(DOCUMENT[-1:])
    assert caught.value.code is Code.PAYLOAD_TOO_LARGE
    assert caught.value.status == 413


def test_empty_identity_body_is_empty() -> None:
    assert decode(None, b"", 10) == b""


# --- gzip and deflate round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        pytest.param("gzip", gzip.compress, id="gzip"),
        pytest.param("x-gzip", gzip.compress, id="x-gzip"),
        pytest.param("GZip", gzip.compress, id="gzip-mixed-case"),
        pytest.param("deflate", zlib.compress, id="deflate-zlib-wrapped"),
        pytest.param("deflate", raw_deflate, id="deflate-raw"),
        pytest.param("gzip, identity", gzip.compress, id="gzip-with-identity"),
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 1000, READ_CHUNK_BYTES])
def test_b2_compressed_bodies_decode(encoding: str, compress: Any, chunk: int) -> None:
    assert decode(encoding, compress(DOCUMENT), 10 * MiB, chunk=chunk) == DOCUMENT


def test_b2_multi_member_gzip_decodes_to_the_concatenation() -> None:
    data = gzip.compress(DOCUMENT[:100]) + gzip.compress(DOCUMENT[100:])
    assert decode("gzip", data, 10 * MiB, chunk=50) == DOCUMENT


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_b2_decoded_size_exactly_at_limit_is_accepted(encoding: str, compress: Any) -> None:
    assert decode(encoding, compress(DOCUMENT), len(DOCUMENT)) == DOCUMENT


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("deflate", raw_deflate)])
def test_b2_decoded_size_one_byte_over_limit_is_refused(encoding: str, compress: Any) -> None:
    error = refusal(encoding, compress(DOCUMENT), len(DOCUMENT) - 1)
    assert error.code is Code.PAYLOAD_TOO_LARGE
    assert "decompresses to more than" in error.text


# --- B2: bombs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [pytest.param(GZIP_HEADER, id="gzip"), pytest.param(ZLIB_HEADER, id="deflate-zlib")])
def test_b2_gzip_bomb_refused_with_bounded_memory(header: bytes) -> None:
    limit = 4 * MiB
    encoding = "gzip" if header == GZIP_HEADER else "deflate"
    decoder = LimitedDecoder(encoding, limit)
    error, fed, peak = feed_until_refused(decoder, bomb_chunks(header, decoded_mib=10 * 1024))  # 10 GiB
    assert error.code is Code.PAYLOAD_TOO_LARGE
    assert error.status == 413
    assert fed < 200 * 1024  # refused within the first few raw chunks, not after reading the stream
    assert decoder.size == limit + 1  # never decoded more than one byte past the limit
    assert peak < 3 * limit  # held output plus zlib's own state; nothing like the 64 MiB one chunk expands to


def test_b2_raw_deflate_bomb_refused_with_bounded_memory() -> None:
    limit = MiB
    decoder = LimitedDecoder("deflate", limit)
    chunks = (zero_blocks() * 64 for _ in range(10 * 1024 // 64))
    error, fed, peak = feed_until_refused(decoder, chunks)
    assert error.code is Code.PAYLOAD_TOO_LARGE
    assert fed <= 64 * len(zero_blocks())
    assert decoder.size == limit + 1
    assert peak < 4 * limit


@pytest.mark.skipif(not HAS_BROTLI, reason="the Brotli package is not installed")
def test_b2_brotli_bomb_refused_with_bounded_memory() -> None:
    brotli = importlib.import_module("brotli")
    bomb = brotli.compress(b"\0" * (256 * MiB), quality=1)
    limit = 4 * MiB
    decoder = LimitedDecoder("br", limit)
    error, _fed, peak = feed_until_refused(decoder, [bomb[i : i + READ_CHUNK_BYTES] for i in range(0, len(bomb), 4096)])
    assert error.code is Code.PAYLOAD_TOO_LARGE
    assert decoder.size <= limit + 64 * 1024  # Brotli caps output in blocks of up to 32 KiB
    assert peak < 3 * limit


@pytest.mark.skipif(not HAS_BROTLI, reason="the Brotli package is not installed")
def test_b2_brotli_round_trip_and_truncation() -> None:
    brotli = importlib.import_module("brotli")
    data = brotli.compress(DOCUMENT)
    assert decode("br", data, 10 * MiB, chunk=7) == DOCUMENT
    assert refusal("br", data[:-2], 10 * MiB).code is Code.INVALID_JSON
    assert refusal("br", data + b"\0", 10 * MiB).code is Code.INVALID_JSON
    assert refusal("br", DOCUMENT, 10 * MiB).code is Code.INVALID_JSON


@pytest.mark.skipif(not HAS_BROTLI, reason="the Brotli package is not installed")
@pytest.mark.parametrize("chunk", [100, READ_CHUNK_BYTES])
def test_b2_brotli_output_far_larger_than_input_is_fully_drained(chunk: int) -> None:
    brotli = importlib.import_module("brotli")
    big = bytes(range(256)) * 8192  # 2 MiB that compresses to a few hundred bytes
    data = brotli.compress(big)
    assert decode("br", data, len(big), chunk=chunk) == big
    assert refusal("br", data, len(big) - 1, chunk=chunk).code is Code.PAYLOAD_TOO_LARGE


# --- B2: unsupported encodings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding",
    ["compress", "x-compress", "zstd", "gzip, gzip", "gzip, deflate", "deflate,gzip", "pack200-gzip", "gzip;q=1", "*"],
)
def test_b2_unknown_or_stacked_content_encoding_is_refused_with_415(encoding: str) -> None:
    with pytest.raises(HandoverError) as caught:
        LimitedDecoder(encoding, 10 * MiB)
    assert caught.value.code is Code.UNSUPPORTED_MEDIA_TYPE
    assert caught.value.status == 415
    assert "use gzip, deflate or identity" in caught.value.text


def test_b2_brotli_is_refused_with_415_when_the_package_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body, "_brotli", None)
    with pytest.raises(HandoverError) as caught:
        LimitedDecoder("br", 10 * MiB)
    assert caught.value.code is Code.UNSUPPORTED_MEDIA_TYPE
    assert caught.value.text == "Content-Encoding br is not supported; use gzip, deflate or identity"


def test_b2_unsupported_encoding_text_drops_control_characters() -> None:
    with pytest.raises(HandoverError) as caught:
        LimitedDecoder("evil\r\nSet-Cookie: x=" + "y" * 500, 10)
    assert "\r" not in caught.value.text
    assert "\n" not in caught.value.text
    assert len(caught.value.text) < 120


# --- corrupt and truncated streams ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        pytest.param("gzip", DOCUMENT, id="gzip-declared-plain-sent"),
        pytest.param("gzip", gzip.compress(DOCUMENT)[:-8], id="gzip-truncated-no-trailer"),
        pytest.param("gzip", gzip.compress(DOCUMENT)[: len(gzip.compress(DOCUMENT)) // 2], id="gzip-truncated-half"),
        pytest.param("gzip", gzip.compress(DOCUMENT)[:-4] + b"\0\0\0\0", id="gzip-wrong-length"),
        pytest.param("gzip", gzip.compress(DOCUMENT) + b"garbage", id="gzip-trailing-garbage"),
        pytest.param("gzip", b"", id="gzip-empty"),
        pytest.param("gzip", GZIP_HEADER, id="gzip-header-only"),
        pytest.param("deflate", zlib.compress(DOCUMENT)[:-6], id="deflate-truncated"),
        pytest.param("deflate", zlib.compress(DOCUMENT) + b"x", id="deflate-trailing-garbage"),
        pytest.param("deflate", b"", id="deflate-empty"),
        pytest.param("deflate", b"\x78", id="deflate-one-byte"),
        pytest.param("deflate", b"\xff\xff\xff\xff\xff", id="deflate-garbage"),
    ],
)
def test_corrupt_or_truncated_compressed_data_is_a_400(encoding: str, data: bytes) -> None:
    for chunk in (1, READ_CHUNK_BYTES):
        error = refusal(encoding, data, 10 * MiB, chunk=chunk)
        assert error.code is Code.INVALID_JSON
        assert error.status == 400
        assert error.text == "the body could not be decompressed as declared by Content-Encoding"


def test_gzip_with_corrupted_payload_byte_is_a_400() -> None:
    data = bytearray(gzip.compress(DOCUMENT))
    data[len(data) // 2] ^= 0xFF
    assert refusal("gzip", bytes(data), 10 * MiB).code is Code.INVALID_JSON


def test_decoder_cannot_be_reused_after_finish() -> None:
    decoder = LimitedDecoder("gzip", 10 * MiB)
    decoder.feed(gzip.compress(b"{}"))
    assert decoder.finish() == b"{}"
    with pytest.raises(RuntimeError):
        decoder.feed(b"x")
    with pytest.raises(RuntimeError):
        decoder.finish()


def test_negative_limit_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="limit"):
        LimitedDecoder(None, -1)


# --- read_body: refusals before reading ---------------------------------------------------------------------------


class UntouchableStream:
    """A request stream that fails the test if anything tries to read it."""

    def iter_chunked(self, n: int) -> Any:
        raise AssertionError("the body was read")


class FakeRequest:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = CIMultiDictProxy(CIMultiDict(headers))
        self.content = UntouchableStream()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return None if value is None else int(value)


async def test_b1_content_length_over_limit_is_refused_before_reading() -> None:
    with pytest.raises(HandoverError) as caught:
        await read_body(FakeRequest({"Content-Length": str(10 * MiB + 1)}), 10 * MiB)  # type: ignore[arg-type]
    assert caught.value.code is Code.PAYLOAD_TOO_LARGE


async def test_b2_unknown_encoding_is_refused_before_reading() -> None:
    with pytest.raises(HandoverError) as caught:
        await read_body(FakeRequest({"Content-Length": "10", "Content-Encoding": "zstd"}), MiB)  # type: ignore[arg-type]
    assert caught.value.code is Code.UNSUPPORTED_MEDIA_TYPE


async def test_malformed_content_length_is_a_bad_header() -> None:
    with pytest.raises(HandoverError) as caught:
        await read_body(FakeRequest({"Content-Length": "ten"}), MiB)  # type: ignore[arg-type]
    assert caught.value.code is Code.BAD_HEADER


# --- read_body through a real aiohttp server ---------------------------------------------------------------------

LIMIT = web.AppKey("limit", int)


async def echo_body(request: web.Request) -> web.Response:
    try:
        received = await read_body(request, request.app[LIMIT])
    except HandoverError as error:
        return web.json_response({"code": error.code.value}, status=error.status)
    return web.Response(body=received)


async def echo_raw(request: web.Request) -> web.Response:
    return web.Response(body=await request.content.read())


async def post(
    data: bytes | AsyncIterator[bytes], headers: dict[str, str], limit: int, *, auto_decompress: bool = False
) -> tuple[int, bytes]:
    app = web.Application()
    app[LIMIT] = limit
    app.router.add_post("/body", echo_body)
    app.router.add_post("/raw", echo_raw)
    server = TestServer(app)
    await server.start_server(auto_decompress=auto_decompress)  # passed on to web.AppRunner, as the service does
    try:
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.post(server.make_url("/body"), data=data, headers=headers) as response,
        ):
            return response.status, await response.read()
    finally:
        await server.close()


async def trickle(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_b1_content_length_over_limit_is_413_over_http() -> None:
    status, _ = await post(b"x" * 5000, {}, 4000)
    assert status == 413


async def test_b1_chunked_body_over_limit_is_413() -> None:
    status, answer = await post(trickle(b"x" * 300_000, 10_000), {}, 100_000)
    assert (status, answer) == (413, b'{"code": "payload-too-large"}')


async def test_b1_chunked_body_within_limit_is_read_whole() -> None:
    status, answer = await post(trickle(DOCUMENT, 1000), {}, len(DOCUMENT))
    assert (status, answer) == (200, DOCUMENT)


async def test_b2_gzip_body_is_decoded_over_http() -> None:
    status, answer = await post(gzip.compress(DOCUMENT), {"Content-Encoding": "gzip"}, len(DOCUMENT))
    assert (status, answer) == (200, DOCUMENT)


async def test_b2_gzip_bomb_is_413_over_http() -> None:
    bomb = b"".join(bomb_chunks(GZIP_HEADER, decoded_mib=1024, blocks_per_chunk=64))  # 1 GiB from ~1 MiB
    status, _ = await post(bomb, {"Content-Encoding": "gzip"}, 2 * MiB)
    assert status == 413


async def test_b2_unknown_encoding_is_415_over_http() -> None:
    status, _ = await post(b"{}", {"Content-Encoding": "zstd"}, MiB)
    assert status == 415


async def test_auto_decompress_false_hands_read_body_the_compressed_bytes() -> None:
    """Pins the aiohttp behaviour the service relies on: AppRunner(auto_decompress=False) leaves bodies raw."""
    compressed = gzip.compress(DOCUMENT)
    for auto_decompress, expected in ((False, compressed), (True, DOCUMENT)):
        app = web.Application()
        app.router.add_post("/raw", echo_raw)
        server = TestServer(app)
        await server.start_server(auto_decompress=auto_decompress)
        try:
            async with (
                aiohttp.ClientSession(auto_decompress=False) as session,
                session.post(server.make_url("/raw"), data=compressed, headers={"Content-Encoding": "gzip"}) as resp,
            ):
                assert await resp.read() == expected
        finally:
            await server.close()
