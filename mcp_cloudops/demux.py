"""Docker's multiplexed stream format, undone: an agent should read a container's log lines, not headers.

A container without a TTY sends stdout and stderr as frames, each behind an 8-byte header
(stream 0/1/2, three zero bytes, big-endian payload size); a TTY container sends raw bytes.
The first bytes of a stream tell which.
"""

from __future__ import annotations

HEADER = 8


def is_header(data: bytes | bytearray) -> bool:
    return len(data) >= HEADER and data[0] in (0, 1, 2) and data[1:4] == b"\0\0\0"


class DockerDemuxer:
    """Feed it the stream's bytes as they arrive; it returns the payload bytes ready so far."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.raw: bool | None = None  # None until the first 8 bytes are seen

    def feed(self, data: bytes) -> bytes:
        if self.raw:
            return data
        self.buffer.extend(data)
        out = bytearray()
        while len(self.buffer) >= HEADER:
            if not is_header(self.buffer):
                # Not a frame: a TTY stream from the start, or a stream we cannot follow; pass it through.
                self.raw = True
                out.extend(self.buffer)
                self.buffer.clear()
                break
            self.raw = False
            size = int.from_bytes(self.buffer[4:HEADER], "big")
            if len(self.buffer) < HEADER + size:
                break
            out.extend(self.buffer[HEADER : HEADER + size])
            del self.buffer[: HEADER + size]
        return bytes(out)

    def flush(self) -> bytes:
        """What is left when the stream ends: a short raw stream, or nothing from a cut frame."""
        rest = bytes(self.buffer) if self.raw is None else b""
        self.buffer.clear()
        return rest
