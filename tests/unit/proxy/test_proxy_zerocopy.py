"""The zero-copy relay's bookkeeping (Flow, against scripted I/O) and its pipe pool."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

import pytest

from browserfleet.proxy.zerocopy import (
    PIPE_BYTES,
    STEPS_PER_WAKEUP,
    Flow,
    PipePool,
    Wait,
    open_pipe,
)

BLOCK = "block"  # a scripted source step: nothing to read right now


@dataclass
class ScriptedChannel:
    """A source that yields scripted reads (sizes, BLOCK, then EOF when the script runs out
    with `eof`), and a destination that takes `room` bytes before it blocks."""

    source: deque[int | str]
    room: int = 1 << 30
    eof: bool = True
    pipe_size: int = 1000
    in_pipe: int = 0
    written: list[tuple[str, int]] = field(default_factory=list)
    fills: int = 0
    pipe_held: bool = False
    releases: int = 0
    shut_down: int = 0

    def send(self, data: memoryview) -> int:
        sent = self._take(len(data))
        self.written.append(("held", sent))
        return sent

    def fill(self) -> int:
        assert self.in_pipe == 0, "a fill only ever goes to an empty pipe"
        self.fills += 1
        self.pipe_held = True
        if not self.source:
            if self.eof:
                return 0
            raise BlockingIOError
        step = self.source.popleft()
        if step == BLOCK:
            raise BlockingIOError
        assert isinstance(step, int)
        moved = min(step, self.pipe_size)
        if moved < step:
            self.source.appendleft(step - moved)
        self.in_pipe = moved
        return moved

    def drain(self, size: int) -> int:
        assert 0 < size <= self.in_pipe
        sent = self._take(size)
        self.in_pipe -= sent
        self.written.append(("pipe", sent))
        return sent

    def release(self) -> None:
        assert self.in_pipe == 0, "only an empty pipe goes back to the pool"
        self.releases += self.pipe_held
        self.pipe_held = False

    def shut(self) -> None:
        self.shut_down += 1

    def _take(self, size: int) -> int:
        taken = min(size, self.room)
        if taken == 0:
            raise BlockingIOError
        self.room -= taken
        return taken


class Counter:
    def __init__(self) -> None:
        self.total = 0

    def __call__(self, n: int) -> None:
        self.total += n


def test_held_bytes_go_out_before_anything_read_from_the_source() -> None:
    channel = ScriptedChannel(deque([300]))
    taken, given = Counter(), Counter()
    flow = Flow(channel, b"h" * 50, taken=taken, given=given)
    assert flow.step() is Wait.DONE
    assert channel.written == [("held", 50), ("pipe", 300)]
    assert (taken.total, given.total) == (300, 350)
    assert channel.shut_down == 1


def test_a_full_destination_stops_reading_the_source_until_it_drains() -> None:
    channel = ScriptedChannel(deque([1000, 1000, 1000]), room=1500)
    given = Counter()
    flow = Flow(channel, given=given)
    assert flow.step() is Wait.WRITE
    assert (channel.fills, flow.in_pipe, given.total) == (2, 500, 1500)
    assert flow.step() is Wait.WRITE  # still full: no further read from the source
    assert channel.fills == 2
    channel.room = 10_000
    assert flow.step() is Wait.DONE
    assert given.total == 3000


def test_a_source_with_nothing_yet_waits_for_it_to_be_readable() -> None:
    channel = ScriptedChannel(deque([200, BLOCK, 100]))
    flow = Flow(channel)
    assert flow.step() is Wait.READ
    assert flow.step() is Wait.DONE
    assert sum(n for _, n in channel.written) == 300


def test_eof_is_passed_on_once_and_the_flow_then_stays_done() -> None:
    channel = ScriptedChannel(deque())
    flow = Flow(channel)
    assert flow.step() is Wait.DONE
    assert flow.step() is Wait.DONE
    assert (channel.shut_down, channel.fills) == (1, 1)


def test_the_pipe_goes_back_whenever_it_is_empty_and_is_kept_while_bytes_wait() -> None:
    channel = ScriptedChannel(deque([800, BLOCK, 800]), room=1000, eof=False)
    flow = Flow(channel)
    assert flow.step() is Wait.READ  # 800 through, then nothing to read: pipe returned
    assert (channel.releases, channel.pipe_held) == (1, False)
    assert flow.step() is Wait.WRITE  # 200 of 800 fit: the other 600 keep the pipe
    assert (flow.in_pipe, channel.pipe_held) == (600, True)


def test_one_step_is_bounded_so_a_busy_connection_cannot_starve_the_loop() -> None:
    channel = ScriptedChannel(deque([10_000_000]), pipe_size=1000)
    flow = Flow(channel)
    assert flow.step() in (Wait.READ, Wait.WRITE)
    assert len(channel.written) + channel.fills <= 2 * STEPS_PER_WAKEUP


def test_socket_errors_reach_the_caller() -> None:
    class Resetting(ScriptedChannel):
        def fill(self) -> int:
            raise ConnectionResetError

    flow = Flow(Resetting(deque()))
    with pytest.raises(ConnectionResetError):
        flow.step()


def test_the_pool_reuses_empty_pipes_keeps_a_few_and_closes_the_rest() -> None:
    pool = PipePool(keep=1)
    first, second = pool.take(), pool.take()
    assert first.size >= 64 * 1024
    pool.give(first)
    pool.give(second)  # over `keep`: closed now
    assert pool.take() is first
    with pytest.raises(OSError):
        os.fstat(second.read_fd)
    pool.give(first)
    pool.close()
    for fd in (first.read_fd, first.write_fd):
        with pytest.raises(OSError):
            os.fstat(fd)


def test_a_pipe_given_back_after_the_pool_closed_is_closed() -> None:
    pool = PipePool()
    pipe = pool.take()
    pool.close()
    pool.give(pipe)
    with pytest.raises(OSError):
        os.fstat(pipe.write_fd)


def test_a_pipe_is_non_blocking_and_as_large_as_allowed() -> None:
    pipe = open_pipe()
    try:
        assert pipe.size in (PIPE_BYTES, 64 * 1024)  # the default past the user's page budget
        assert os.write(pipe.write_fd, b"z" * (pipe.size + 1)) == pipe.size  # no blocking
        with pytest.raises(BlockingIOError):
            os.write(pipe.write_fd, b"z")
    finally:
        pipe.close()
