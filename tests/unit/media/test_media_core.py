"""The pure parts of recordings, downloads and signed links."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from browserfleet.auth.signing import ServerSecret
from browserfleet.media import downloads as dl
from browserfleet.media.frames import Frame, FrameSlot, ack_delay
from browserfleet.media.links import Disposition, sign, verify
from browserfleet.media.recorder import RecordingSpec, ffmpeg_argv, output_size, sandbox_argv

SECRET = ServerSecret(b"k" * 32)
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_a_link_verifies_only_for_its_own_key_expiry_and_disposition() -> None:
    link = sign(
        SECRET,
        "recordings/p/s.mp4",
        expires_at=NOW + timedelta(hours=1),
        disposition=Disposition.INLINE,
    )
    good = {"expires": link.expires, "disposition": Disposition.INLINE, "signature": link.signature}
    assert verify(SECRET, "recordings/p/s.mp4", now=NOW, **good)  # type: ignore[arg-type]
    assert not verify(SECRET, "recordings/p/t.mp4", now=NOW, **good)  # type: ignore[arg-type]
    later = {**good, "expires": link.expires + 1}
    assert not verify(SECRET, "recordings/p/s.mp4", now=NOW, **later)  # type: ignore[arg-type]
    attach = {**good, "disposition": Disposition.ATTACHMENT}
    assert not verify(SECRET, "recordings/p/s.mp4", now=NOW, **attach)  # type: ignore[arg-type]
    other = ServerSecret(b"o" * 32)
    assert not verify(other, "recordings/p/s.mp4", now=NOW, **good)  # type: ignore[arg-type]
    expired = NOW + timedelta(hours=1, seconds=1)
    assert not verify(SECRET, "recordings/p/s.mp4", now=expired, **good)  # type: ignore[arg-type]
    # The link's signature is not the session's CDP token, nor any other derived value.
    assert link.signature != SECRET.cdp_token("s")
    assert link.url("http://h/").startswith("http://h/files/recordings/p/s.mp4?expires=")


def test_cursor_round_trips_and_refuses_what_it_never_handed_out() -> None:
    for name in ("a.pdf", "rapport été.csv", "x" * 200):
        assert dl.decode_cursor(dl.encode_cursor(name)) == name
    for bad in ("%%%", "", dl.encode_cursor("../x"), dl.encode_cursor("a.crdownload"), "ÿ"):
        with pytest.raises(dl.InvalidCursor):
            dl.decode_cursor(bad)


def test_pages_follow_name_order_and_the_size_limit_keeps_what_fits() -> None:
    files = [dl.DownloadedFile(n, s, NOW) for n, s in (("a", 5), ("b", 50), ("c", 5))]
    first = dl.page_of(files, after=None, limit=2)
    assert [f.name for f in first.files] == ["a", "b"] and first.next_cursor is not None
    rest = dl.page_of(files, after=dl.decode_cursor(first.next_cursor), limit=2)
    assert [f.name for f in rest.files] == ["c"] and rest.next_cursor is None
    assert [f.name for f in dl.within_limit(files, 12)] == ["a", "c"]


def test_recording_size_keeps_the_aspect_ratio_in_even_numbers() -> None:
    assert output_size(1920, 1080, 1280) == (1280, 720)
    assert output_size(1280, 1001, 1280) == (1280, 1000)
    assert output_size(801, 601, 1280) == (800, 600)


def test_ffmpeg_gets_a_steady_rate_h264_faststart_mp4_and_a_sandbox_without_network() -> None:
    argv = ffmpeg_argv("/usr/bin/ffmpeg", RecordingSpec(10, 1280, 720), "file:/dev/fd/5")
    joined = " ".join(argv)
    for part in (
        "-use_wallclock_as_timestamps 1",
        "fps=10",
        "libx264",
        "-pix_fmt yuv420p",
        "+faststart",
        "-threads 1",
        "-reinit_filter 0",
    ):
        assert part in joined
    assert argv[-1] == "file:/dev/fd/5"
    boxed = sandbox_argv("/usr/bin/bwrap", argv)
    assert boxed[:2] == ["/usr/bin/bwrap", "--unshare-all"]  # no network namespace shared
    assert "--bind" not in boxed and "--share-net" not in boxed  # nothing writable bound
    assert boxed[boxed.index("--") + 1 :] == argv


def test_ack_delay_paces_the_browser_to_the_fastest_consumer() -> None:
    assert ack_delay(10, 0.0) == pytest.approx(0.1)
    assert ack_delay(10, 0.25) == 0.0
    with pytest.raises(ValueError):
        ack_delay(0, 0.0)


def test_a_slot_holds_only_the_newest_frame_and_ends_when_closed() -> None:
    async def scenario() -> None:
        slot = FrameSlot()
        for seq in range(5):
            slot.offer(Frame(b"x", seq))
        taken = await slot.take()
        assert taken is not None and taken.seq == 4  # a slow consumer skips, never queues
        slot.close()
        assert await slot.take() is None

    asyncio.run(scenario())
