"""Docker frame headers are removed however the frames are split; raw (TTY) streams pass untouched."""

from __future__ import annotations

from mcp_cloudops.demux import DockerDemuxer


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def feed_all(chunks: list[bytes]) -> bytes:
    demuxer = DockerDemuxer()
    return b"".join(demuxer.feed(chunk) for chunk in chunks) + demuxer.flush()


def test_frames_in_one_chunk() -> None:
    assert feed_all([frame(1, b"out\n") + frame(2, b"err\n")]) == b"out\nerr\n"


def test_frames_split_anywhere() -> None:
    stream = frame(1, b"hello ") + frame(2, b"world\n") + frame(1, b"")
    for cut in range(1, len(stream)):
        assert feed_all([stream[:cut], stream[cut:]]) == b"hello world\n"
    assert feed_all([bytes([b]) for b in stream]) == b"hello world\n"


def test_tty_stream_passes_through() -> None:
    assert feed_all([b"tick 1\r\n", b"tick 2\r\n"]) == b"tick 1\r\ntick 2\r\n"


def test_short_raw_stream_is_flushed() -> None:
    assert feed_all([b"ok"]) == b"ok"


def test_cut_frame_at_end_is_dropped_not_garbled() -> None:
    assert feed_all([frame(1, b"complete"), frame(1, b"partial")[:10]]) == b"complete"
