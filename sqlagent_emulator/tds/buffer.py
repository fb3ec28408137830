"""A cursor over a message payload, with the little-endian readers [MS-TDS] 2.2.5.1 defines."""

from __future__ import annotations

import struct

from .packets import ProtocolError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")


class ByteReader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(f"message truncated: wanted {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def peek(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolError("message truncated")
        return self.data[self.pos]

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return _U16.unpack(self.take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def i32(self) -> int:
        return _I32.unpack(self.take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self.take(8))[0]

    def b_varchar(self) -> str:
        """B_VARCHAR: a 1-byte character count, then UTF-16LE."""
        return self.take(self.u8() * 2).decode("utf-16-le")

    def us_varchar(self) -> str:
        """US_VARCHAR: a 2-byte character count, then UTF-16LE."""
        return self.take(self.u16() * 2).decode("utf-16-le")

    def skip_all_headers(self) -> None:
        """Skip ALL_HEADERS (2.2.5.3): its first DWORD is its own total length."""
        total = _U32.unpack(self.data[self.pos : self.pos + 4])[0]
        self.take(total)
