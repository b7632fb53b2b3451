"""Frames of a screencast and the slot each consumer reads them from (pure, no I/O).

A consumer never queues frames: it holds the newest one it has not taken yet. A slow consumer
(an ffmpeg that falls behind, a viewer on a slow link) therefore skips frames instead of
growing a backlog, and every consumer of one tab shares the same bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    """One JPEG frame of the followed tab, as Chrome sent it."""

    jpeg: bytes
    seq: int  # increases by one per frame of the screencast


class FrameSlot:
    """The newest frame not yet taken by one consumer; `take()` waits for one."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._ready = asyncio.Event()
        self._closed = False

    def offer(self, frame: Frame) -> None:
        self._frame = frame
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def peek(self) -> Frame | None:
        """The newest frame offered, taken or not."""
        return self._frame

    async def take(self) -> Frame | None:
        """The newest frame once there is one not taken yet; None once the slot is closed."""
        await self._ready.wait()
        self._ready.clear()
        if self._closed:
            return None
        return self._frame


def ack_delay(rate_fps: float, since_last_s: float) -> float:
    """How long to hold the ack of a frame so that Chrome, which sends the next frame only once
    the last one is acknowledged, sends at most `rate_fps` frames a second."""
    if rate_fps <= 0:
        raise ValueError("the rate must be positive")
    return max(0.0, 1.0 / rate_fps - since_last_s)
