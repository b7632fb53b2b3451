"""What a Chromium process is launched with: a frozen value compared by equality.

Two browsers launched from equal specs are interchangeable (the warm pool relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    # No automation tells (see browsers/stealth.py); False runs plain Chromium.
    stealth: bool = True
    extra_args: tuple[str, ...] = ()


def pool_key(spec: LaunchSpec) -> LaunchSpec:
    """The part of a spec a running browser cannot change: what a pooled browser must match.

    Full Chromium (headless=new) is reshaped after launch, and tabs opened later inherit the
    window's size, so its screen is left out. The headless shell opens every new tab at the
    launch size, so there the screen must match too. Every other field (including any added
    later) must be equal: a new field errs towards a cold launch, never a wrong browser.
    """
    if spec.mode is HeadlessMode.SHELL:
        return spec
    return replace(spec, screen_width=0, screen_height=0)
