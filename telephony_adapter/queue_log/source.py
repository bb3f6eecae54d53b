"""Bytes to queue_log text: what the CLI and the HTTP upload share.

Rotated logs are usually gzip-compressed by logrotate (``queue_log.1.gz``),
so compressed input is accepted as it is."""

from __future__ import annotations

import gzip
import zlib


class UnreadableInput(ValueError):
    """The input as a whole cannot be read; ``code`` is stable for clients."""

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.line = code, message, line


def decode(data: bytes, what: str = "file") -> str:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableInput("corrupt-gzip", f"the {what} is gzip data that cannot be "
                                                  f"decompressed ({exc})") from None
    if not data.strip():
        raise UnreadableInput("empty-upload", f"the {what} is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UnreadableInput("not-utf8", f"the {what} is not UTF-8 text (line {line})",
                              line) from None
