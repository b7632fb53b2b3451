"""What happens after a session is stopped and billed: its end-of-session steps, then teardown.

A stop answers as soon as the session is STOPPED and billed; everything slower runs after, in a
task the service owns, on every way a session ends (API, timeout, shutdown, crash, orphan
adoption). The steps are an ordered list given to the service (bootstrap builds it): each runs
with its own timeout, and a step that fails or runs out of time is logged and skipped, never
stopping the steps after it nor the teardown.

Phases, in order:
  LIVE    the browser still runs (with no client left: its CDP tokens are closed). Read what only
          a running browser can give (cookies over CDP, the end of a screencast).
  (the browser is asked to close gracefully, bounded, then every process of it is killed: from
   here on nothing of the tenant runs, so nothing can change its files under a reader)
  CLOSED  the browser is gone, its files are still there: save what it left on disk. A reader must
          still never follow anything the tenant planted there (symlinks, FIFOs, hard links,
          huge sparse files): the storage package's archive packer and open_regular are careful.
Then the browser's workdir is removed and what its sandbox held is given back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from browserfleet.sessions.model import Session
from browserfleet.sessions.ports import BrowserHandle

log = logging.getLogger(__name__)


class EndPhase(StrEnum):
    LIVE = "live"  # the browser runs
    CLOSED = "closed"  # the browser is gone; its files remain


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """What a step gets: the session as stopped and billed, its browser while it runs (None in
    the CLOSED phase, and always None when this server has no browser for it, e.g. an orphan
    adopted from a dead server), and its workdir on this host if it still exists."""

    session: Session
    browser: BrowserHandle | None
    workdir: Path | None


class EndStep(Protocol):
    @property
    def name(self) -> str:
        """For logs."""

    @property
    def phase(self) -> EndPhase: ...

    @property
    def timeout_s(self) -> float:
        """How long the step may take; past it the step is cancelled and the end goes on."""

    def wanted(self, session: Session) -> bool:
        """Whether this session needs the step at all (e.g. only sessions with a profile).
        Decided up front, so that a session needing no LIVE step is not closed gracefully."""

    async def run(self, end: SessionEnd) -> None: ...


async def run_steps(steps: Sequence[EndStep], phase: EndPhase, end: SessionEnd) -> None:
    """Run the steps of `phase` that the session wants, one after the other, each bounded and
    isolated: an error or a timeout is logged, and the next step runs. Cancellation of the
    caller (shutdown running out of time) goes through."""
    for step in steps:
        if step.phase is not phase or not step.wanted(end.session):
            continue
        began = time.monotonic()
        extra = {"session_id": str(end.session.id), "step": step.name}
        try:
            async with asyncio.timeout(step.timeout_s):
                await step.run(end)
        except TimeoutError:
            log.error("end step %s timed out after %.0f s", step.name, step.timeout_s, extra=extra)
        except Exception:
            log.exception("end step %s failed", step.name, extra=extra)
        else:
            log.info(
                "end step %s done in %.0f ms",
                step.name,
                (time.monotonic() - began) * 1000,
                extra=extra,
            )


def wants_graceful_close(steps: Sequence[EndStep], session: Session) -> bool:
    """A browser is closed gracefully (so it writes what it keeps in memory to disk) only when a
    later step reads its files; otherwise it is killed at once."""
    return any(s.phase is EndPhase.CLOSED and s.wanted(session) for s in steps)
