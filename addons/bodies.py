"""Bodies within bounds: decoding a request body without letting a small compressed body grow without limit, and
cutting what a row keeps of a large body.

A client's body is decompressed only up to `limits.max_request_bytes` (a gzip bomb stops there, with `BodyTooLarge`),
and a row keeps at most `limits.max_logged_body_bytes` of each body: a longer one is stored as a JSON object that says
it was cut, so the `JSON` column still holds valid JSON.
"""

from __future__ import annotations

import itertools
import json
import re
import zlib
from collections.abc import Callable
from typing import Any

import brotli

try:
    from compression import zstd  # Python 3.14
except ImportError:  # pragma: no cover - mitmproxy depends on the backport before 3.14
    from backports import zstd

from mitmproxy import http

TRUNCATED_KEY = "llmtap_truncated"


class BodyTooLarge(ValueError):
    """A body over the limit, before or after decoding it."""

    def __init__(self, limit_bytes: int, encoding: str | None = None):
        after = f" once decoded from {encoding}" if encoding else ""
        super().__init__(f"the request body is larger than llmtap's limit of {limit_bytes:,} bytes{after} "
                         "(limits.max_request_bytes)")
        self.limit_bytes = limit_bytes


class UnsupportedEncoding(ValueError):
    """A content-encoding llmtap cannot decode within bounds."""


def decoded_body(message: http.Message, max_bytes: int) -> bytes:
    """The body of `message` with its content-encoding undone, never more than `max_bytes` of it.

    Raises `BodyTooLarge` when the body (raw, or decoded) passes `max_bytes`, and `UnsupportedEncoding` for an
    encoding llmtap does not decode. Nothing larger than `max_bytes` + one read's worth is ever held.
    """
    raw = message.raw_content or b""
    if len(raw) > max_bytes:
        raise BodyTooLarge(max_bytes)
    encodings = [e.strip().lower() for e in message.headers.get("content-encoding", "").split(",") if e.strip()]
    body = raw
    for encoding in reversed(encodings):  # the last encoding applied is undone first
        if encoding == "identity":
            continue
        decode = _DECODERS.get(encoding)
        if decode is None:
            raise UnsupportedEncoding(f"content-encoding {encoding!r} is not supported; send gzip, deflate, br, zstd "
                                      "or an uncompressed body")
        try:
            body = decode(body, max_bytes + 1)
        except BodyTooLarge:
            raise
        except Exception as e:  # a corrupt stream: the client's mistake, said plainly
            raise UnsupportedEncoding(f"the body is not valid {encoding}: {e}") from None
        if len(body) > max_bytes:
            raise BodyTooLarge(max_bytes, encoding)
    return body


def _zlib(wbits: int) -> Callable[[bytes, int], bytes]:
    def decode(data: bytes, limit: int) -> bytes:
        return zlib.decompressobj(wbits).decompress(data, limit)
    return decode


def _deflate(data: bytes, limit: int) -> bytes:
    # "deflate" is meant to be zlib-wrapped, but many clients send raw deflate: accept both, as mitmproxy does.
    try:
        return _zlib(zlib.MAX_WBITS)(data, limit)
    except zlib.error:
        return _zlib(-zlib.MAX_WBITS)(data, limit)


def _brotli(data: bytes, limit: int) -> bytes:
    return brotli.Decompressor().process(data, output_buffer_limit=limit)


def _zstd(data: bytes, limit: int) -> bytes:
    return zstd.ZstdDecompressor().decompress(data, max_length=limit)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _zlib(16 + zlib.MAX_WBITS), "x-gzip": _zlib(16 + zlib.MAX_WBITS), "deflate": _deflate,
    "br": _brotli, "zstd": _zstd,
}


def parse_json_or_text(content: bytes) -> Any:
    """A body as JSON when it is JSON, else its text (None when empty). Never raises."""
    if not content:
        return None
    try:
        return json.loads(content)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python parses
        return content.decode("utf-8", errors="replace")


def parse_json_body(content: bytes) -> tuple[Any, str | None]:
    """A request body as JSON, with None; or, when it is not JSON, its text (None when empty) and why, in words a
    client can act on: empty, not UTF-8 (at byte N), cut off (at byte N), nested too deeply, or invalid at line L
    column C. Never raises."""
    if not content:
        return None, "the request body is empty"
    try:
        return json.loads(content), None
    except UnicodeDecodeError as e:  # json.loads reads UTF-8 (or UTF-16/32, by their first bytes)
        why = (f"the request body is not {e.encoding.upper()}: byte 0x{content[e.start]:02x} at byte {e.start} "
               f"({e.reason})" if e.start < len(content) else f"the request body is not {e.encoding.upper()}")
    except RecursionError:
        why = (f"the request body's JSON is nested {_json_depth(content):,} levels deep, deeper than llmtap's JSON "
               "reader goes (about 1,000 levels)")
    except json.JSONDecodeError as e:
        why = _json_error_words(e, len(content))
    return content.decode("utf-8", errors="replace"), why


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, for a person: "an object", "a list", "a string", ..."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    kinds = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _json_depth(content: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings skipped); read only once it failed to parse."""
    brackets = _JSON_STRING.sub(b"", content).translate(None, _ALL_BUT_BRACKETS)
    return max(itertools.accumulate(1 if byte in b"[{" else -1 for byte in brackets), default=0)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_ALL_BUT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _json_error_words(error: json.JSONDecodeError, total_bytes: int) -> str:
    at_byte = len(error.doc[:error.pos].encode("utf-8", errors="surrogatepass"))
    if not error.doc.strip():
        return "the request body is empty (only whitespace)"
    if error.msg.startswith("Unterminated string") or error.pos >= len(error.doc.rstrip()):
        return (f"the request body is cut off: its JSON ends at byte {total_bytes:,} before it is complete "
                f"({error.msg.removesuffix(' at')} at line {error.lineno} column {error.colno})")
    return (f"the request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno} "
            f"(byte {at_byte:,})")


def capped_json_text(value: Any, max_bytes: int) -> str | None:
    """`value` as JSON text for a row, at most about `max_bytes` long: a longer one becomes
    `{"llmtap_truncated": true, "bytes": <full length>, "head": "<its first max_bytes characters>"}`."""
    if value is None:
        return None
    text = _valid_utf8(json.dumps(value, ensure_ascii=False))
    if len(text) <= max_bytes or (isinstance(value, dict) and value.get(TRUNCATED_KEY) is True):
        return text  # within the cap, or already cut (a streamed answer's kept ends): never wrapped twice
    return _cut(text[:max_bytes], len(text.encode("utf-8")))


def cut_body_text(content: bytes, max_bytes: int) -> str | None:
    """The row's text for a body already known to be over `max_bytes`, cut from its bytes as they came (no JSON
    round trip of a large body); None when it is within the cap."""
    if len(content) <= max_bytes:
        return None
    return _cut(_valid_utf8(content[:max_bytes].decode("utf-8", errors="replace")), len(content))


def _cut(head: str, total_bytes: int) -> str:
    return json.dumps({TRUNCATED_KEY: True, "bytes": total_bytes, "head": head}, ensure_ascii=False)


def _valid_utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" is valid JSON, not valid UTF-8): store U+FFFD instead
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
