"""Docker's multiplexed stream format, undone: an agent should read a container's log lines, not headers.

A container without a TTY sends stdout and stderr as frames, each behind an 8-byte header
(stream 0/1/2, three zero bytes, big-endian payload size); a TTY container sends raw bytes.
The first bytes of a stream tell which.

The size in a header is the peer's word, not a promise: a TTY's own output can look like a header
announcing gigabytes. So a frame is held whole only while it fits the output budget left; a bigger one
is passed on as its bytes arrive, and the caller's byte cap ends it.
"""

from __future__ import annotations

HEADER = 8
BUDGET = 1024 * 1024  # default payload bytes the caller keeps: the largest max_bytes a tool allows


def is_header(data: bytes | bytearray) -> bool:
    return len(data) >= HEADER and data[0] in (0, 1, 2) and data[1:4] == b"\0\0\0"


class DockerDemuxer:
    """Feed it the stream's bytes as they arrive; it returns the payload bytes ready so far.

    It never holds more than a header plus `budget` bytes: the payload it will still hand out whole.
    """

    def __init__(self, budget: int = BUDGET) -> None:
        self.buffer = bytearray()  # an incomplete header, or a whole-held frame not yet complete
        self.raw: bool | None = None  # None until the first 8 bytes are seen
        self.budget = budget  # payload bytes still to hand out; a frame bigger than that is streamed
        self.streaming = 0  # payload bytes of a streamed frame still to pass through

    def feed(self, data: bytes) -> bytes:
        if self.raw:
            return data
        out = bytearray()
        if self.streaming:
            part = data[: self.streaming]
            out += part
            self.streaming -= len(part)
            data = data[len(part) :]
        self.buffer += data
        while len(self.buffer) >= HEADER:
            if not is_header(self.buffer):
                # Not a frame: a TTY stream from the start, or a stream we cannot follow; pass it through.
                self.raw = True
                out += self.buffer
                self.buffer.clear()
                break
            self.raw = False
            size = int.from_bytes(self.buffer[4:HEADER], "big")
            if size > self.budget - len(out):
                # Too big to hold whole (the cap ends it anyway): pass on what has come, then the rest as it comes.
                part = self.buffer[HEADER : HEADER + size]
                out += part
                self.streaming = size - len(part)
                del self.buffer[: HEADER + len(part)]
                continue
            if len(self.buffer) < HEADER + size:
                break
            out += self.buffer[HEADER : HEADER + size]
            del self.buffer[: HEADER + size]
        self.budget = max(0, self.budget - len(out))
        return bytes(out)

    def flush(self) -> bytes:
        """What is left when the stream ends: a short raw stream, or nothing from a cut frame held whole
        (a streamed frame's bytes were passed on as they came)."""
        rest = bytes(self.buffer) if self.raw is None else b""
        self.buffer.clear()
        return rest
