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


def test_a_frame_bigger_than_the_budget_is_passed_on_as_it_arrives() -> None:
    demuxer = DockerDemuxer(budget=100)
    header = bytes([1, 0, 0, 0]) + (2**31).to_bytes(4, "big")  # a TTY's output can look like this
    assert demuxer.feed(header + b"a" * 60) == b"a" * 60
    assert demuxer.feed(b"b" * 500) == b"b" * 500  # the caller's byte cap ends it, not the header
    assert len(demuxer.buffer) == 0


def test_a_frame_is_held_whole_only_while_it_fits_what_is_left_of_the_budget() -> None:
    demuxer = DockerDemuxer(budget=10)
    assert demuxer.feed(frame(1, b"12345")[:9]) == b""  # 5 fit in 10: held until complete
    assert demuxer.feed(b"2345") == b"12345"
    assert demuxer.feed(frame(2, b"678901")[:10]) == b"67"  # 6 do not fit in the 5 left: streamed
    assert demuxer.feed(b"8901" + frame(1, b"x")) == b"8901x"
    assert len(demuxer.buffer) == 0


def test_header_bytes_split_across_chunks_never_reach_the_output() -> None:
    stream = frame(1, b"a" * 300) + frame(2, b"b" * 5)
    demuxer = DockerDemuxer(budget=100)  # the first frame is streamed; then the budget is spent, so is the next
    out = b"".join(demuxer.feed(stream[i : i + 3]) for i in range(0, len(stream), 3)) + demuxer.flush()
    assert out == b"a" * 300 + b"b" * 5
