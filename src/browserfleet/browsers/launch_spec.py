"""What a Chromium process is launched with: a frozen value compared by equality.

Two browsers launched from equal specs are interchangeable (the warm pool relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class HeadlessMode(StrEnum):
    NEW = "new"  # full Chromium, --headless=new
    SHELL = "shell"  # chromium-headless-shell


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    mode: HeadlessMode
    screen_width: int
    screen_height: int
    # Where the browser sends all traffic ("host:port" of an egress proxy), or None for direct.
    proxy_server: str | None = None
    ignore_cert_errors: bool = False
    # False: PDFs are downloaded instead of rendered in a tab.
    pdf_viewer: bool = True
    extra_args: tuple[str, ...] = ()
