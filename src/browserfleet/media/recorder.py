"""A session's recording: screencast frames piped into ffmpeg, which runs in a sandbox of its own.

ffmpeg decodes JPEGs rendered from tenant content, so it gets the least the job needs: the
session's own unprivileged uid (root-run servers; `nobody` when the browser has no uid of its
own), bubblewrap's namespaces (user, pid, ipc, uts, cgroup, and a network namespace with no
interface but loopback), a read-only /usr and no writable directory at all. Its input is a pipe
(stdin) and its output one file the server created, in the server's private work directory, and
hands over as fd 3 (ffmpeg writes `/dev/fd/3`; the file is owned by ffmpeg's uid so the +faststart
pass can reopen it to move the index). `-threads 1` keeps its CPU to one core at most.

Timing: every frame gets the wall-clock time it reached ffmpeg; the `fps` filter turns that
variable-rate input into a steady rate by repeating the previous frame (while the page is
still, Chrome sends nothing and the recorder writes nothing). At the end the last frame is sent
once more, so the video lasts until the stop. Output: H.264 (ultrafast, yuv420p) in an MP4 with
its index up front (+faststart), scaled and padded to a fixed size: a browser's `<video>`
plays it and can seek before it has all of it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from browserfleet.media.frames import FrameSlot
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

# A blank (white) 16x16 JPEG: the first frame, written when the recorder starts, so the video
# begins with the session even when the browser paints nothing until its first navigation.
BLANK_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgEBAQEBAUFBQUFBQYGBgYGBgYGBgYGBgYH"
    "BwcICAgHBwcGBgcHCAgICAkJCQgICAgJCQoKCgwMCwsODg4RERT/xABLAAEBAAAAAAAAAAAAAAAAAAAABwEBAAAAAAAA"
    "AAAAAAAAAAAAABABAAAAAAAAAAAAAAAAAAAAABEBAAAAAAAAAAAAAAAAAAAAAP/AABEIABAAEAMBIgACEQADEQD/2gAMAw"
    "EAAhEDEQA/AL+AD//Z"
)

NOBODY = 65534
SETPRIV = "/usr/bin/setpriv"
# The dynamic linker's cache and the alternatives links some of ffmpeg's libraries go through.
_ETC = ("/etc/ld.so.cache", "/etc/alternatives")
_MERGED = ("/bin", "/lib", "/lib64", "/sbin")


@dataclass(frozen=True, slots=True)
class RecordingSpec:
    fps: int
    width: int  # output size (even numbers): frames are scaled to fit and padded
    height: int


def output_size(screen_width: int, screen_height: int, max_width: int) -> tuple[int, int]:
    """The recording's size: the screen's aspect ratio, at most max_width wide, even numbers
    (yuv420p halves both dimensions)."""
    width = min(screen_width, max_width)
    height = round(screen_height * width / screen_width)
    return width - width % 2, max(2, height - height % 2)


def output_url(fd: int) -> str:
    """Where ffmpeg writes: the descriptor it inherited, by a path it can reopen."""
    return f"file:/dev/fd/{fd}"


def ffmpeg_argv(ffmpeg: str, spec: RecordingSpec, output: str) -> list[str]:
    w, h = spec.width, spec.height
    video_filter = (
        f"fps={spec.fps}:eof_action=pass,"
        f"scale={w}:{h}:force_original_aspect_ratio=decrease,"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,format=yuv420p"
    )
    return [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        "1",
        "-use_wallclock_as_timestamps",
        "1",
        "-f",
        "mjpeg",
        # Frames change size (the blank first frame, a resized window): the scale filter takes
        # each as it comes instead of the graph being rebuilt (which restarts the timeline).
        "-reinit_filter",
        "0",
        "-i",
        "pipe:0",
        "-filter_threads",
        "1",
        "-vf",
        video_filter,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "stillimage",
        "-crf",
        "28",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        "-y",
        output,
    ]


def sandbox_argv(bwrap: str, command: list[str]) -> list[str]:
    """bubblewrap around `command`: no network, nothing of the host but /usr (read-only); the
    output comes in as an open descriptor."""
    options = ["--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for path in _MERGED:
        if os.path.islink(path):
            options += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            options += ["--ro-bind", path, path]
    for path in _ETC:
        if os.path.exists(path):
            options += ["--ro-bind", path, path]
    options += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/"]
    options += ["--chdir", "/", "--clearenv", "--setenv", "PATH", "/usr/bin"]
    return [bwrap, *options, "--", *command]


def run_as(workdir_owner: int) -> int | None:
    """The uid ffmpeg runs as: the session's sandbox uid; `nobody` for a browser running as
    root; None (unchanged) when the server is not root and cannot switch."""
    if os.geteuid() != 0:
        return None
    return workdir_owner if workdir_owner != 0 else NOBODY


class Recorder:
    """ffmpeg fed from one FrameSlot. `start()`, then `finish()` (or `abort()`)."""

    def __init__(self, proc: asyncio.subprocess.Process, slot: FrameSlot, output: Path) -> None:
        self._proc = proc
        self._slot = slot
        self._output = output
        self._tasks = TaskSet(f"recorder-{proc.pid}")
        self._feeder = self._tasks.spawn(self._feed(), name="feed")
        self.frames_written = 0

    @classmethod
    async def start(
        cls,
        spec: RecordingSpec,
        slot: FrameSlot,
        output: Path,
        *,
        ffmpeg: str,
        bwrap: str | None,
        uid: int | None,
    ) -> Recorder:
        """Create `output` (it must not exist) for ffmpeg's uid and start ffmpeg writing it."""
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(output, flags, 0o600)
        try:
            if uid is not None:
                os.fchown(fd, uid, uid)
            argv = ffmpeg_argv(ffmpeg, spec, output_url(fd))
            if bwrap is not None:
                argv = sandbox_argv(bwrap, argv)
            if uid is not None:
                # setpriv, not Popen(user=...): the server's event loop (uvloop) cannot switch.
                ids = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
                argv = [SETPRIV, *ids, "--", *argv]
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin"},
                start_new_session=True,
                pass_fds=(fd,),
            )
        finally:
            os.close(fd)
        return cls(proc, slot, output)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def output(self) -> Path:
        return self._output

    async def _feed(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            if self._slot.peek() is None:
                stdin.write(BLANK_JPEG)
                await stdin.drain()
                self.frames_written += 1
            while (frame := await self._slot.take()) is not None:
                stdin.write(frame.jpeg)
                await stdin.drain()
                self.frames_written += 1

    async def finish(self, timeout_s: float) -> Path | None:
        """Stop feeding, send the last frame once more (the video lasts until now), let ffmpeg
        write its index; the finished MP4, or None if ffmpeg failed or ran out of time."""
        last = self._slot.peek()
        self._slot.close()
        await asyncio.gather(self._feeder, return_exceptions=True)
        stdin = self._proc.stdin
        assert stdin is not None
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            if self.frames_written:
                stdin.write(last.jpeg if last is not None else BLANK_JPEG)
                await stdin.drain()
        stdin.close()
        try:
            async with asyncio.timeout(timeout_s):
                _, err = await self._proc.communicate()
        except TimeoutError:
            log.error("ffmpeg pid %d did not finish in %.0f s", self.pid, timeout_s)
            await self.abort()
            return None
        if self._proc.returncode != 0 or self.frames_written == 0:
            log.error(
                "recording failed (ffmpeg exit %s, %d frames): %s",
                self._proc.returncode,
                self.frames_written,
                err.decode(errors="replace")[-500:],
            )
            return None
        return self.output

    async def abort(self) -> None:
        """Kill ffmpeg (and anything it started) and reap it."""
        self._slot.close()
        self._feeder.cancel()
        await asyncio.gather(self._feeder, return_exceptions=True)
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 9)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await self._proc.wait()
