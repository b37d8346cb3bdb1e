"""Length-prefixed binary framing shared by the stored and pushed formats.

Every frame is ``magic | version | fields... | crc32``. The CRC is not a
security measure (the AEAD tags and the SHA3-512 hash are); it makes any
truncated, extended or flipped byte fail decoding with a typed error instead
of yielding a different, plausible-looking object.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from tx_manager.errors import EnvelopeDecodeError

_U32 = struct.Struct(">I")
_CRC_SIZE = 4


class FrameWriter:
    """Accumulates one frame; ``finish`` appends the checksum."""

    def __init__(self, magic: bytes, version: int) -> None:
        self._parts: list[bytes] = [magic, bytes([version])]

    def fixed(self, value: bytes) -> None:
        self._parts.append(value)

    def u32(self, value: int) -> None:
        self._parts.append(_U32.pack(value))

    def blob(self, value: bytes) -> None:
        self._parts.append(_U32.pack(len(value)))
        self._parts.append(value)

    def blobs(self, values: Sequence[bytes]) -> None:
        self.u32(len(values))
        for value in values:
            self.blob(value)

    def finish(self) -> bytes:
        body = b"".join(self._parts)
        return body + _U32.pack(zlib.crc32(body))


class FrameReader:
    """Reads one frame written by ``FrameWriter``; every read checks bounds."""

    def __init__(self, data: bytes, magic: bytes, what: str) -> None:
        self._what = what
        if len(data) < len(magic) + 1 + _CRC_SIZE:
            raise EnvelopeDecodeError(f"{what}: {len(data)} bytes is too short")
        body, crc = data[:-_CRC_SIZE], data[-_CRC_SIZE:]
        if _U32.unpack(crc)[0] != zlib.crc32(body):
            raise EnvelopeDecodeError(f"{what}: checksum mismatch (truncated or altered)")
        if not body.startswith(magic):
            raise EnvelopeDecodeError(f"{what}: wrong magic bytes")
        self._data = memoryview(body)
        self._pos = len(magic)
        self.version = self._take(1)[0]

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise EnvelopeDecodeError(f"{self._what}: truncated at offset {self._pos}")
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk

    def fixed(self, size: int) -> bytes:
        return self._take(size)

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def blob(self) -> bytes:
        return self._take(self.u32())

    def blobs(self) -> tuple[bytes, ...]:
        count = self.u32()
        remaining = len(self._data) - self._pos
        if count * 4 > remaining:
            raise EnvelopeDecodeError(f"{self._what}: list of {count} items cannot fit")
        return tuple(self.blob() for _ in range(count))

    def end(self) -> None:
        if self._pos != len(self._data):
            raise EnvelopeDecodeError(
                f"{self._what}: {len(self._data) - self._pos} unexpected trailing bytes"
            )
