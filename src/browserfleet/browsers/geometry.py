"""The one rule for a session's screen, window and viewport: a maximized window on a desktop.

A session asks for a screen size. Its screen has a taskbar along the bottom edge, so the
area windows may use (availWidth x availHeight) is the screen less the taskbar; each browser
window fills that work area at (0, 0), as a maximized window does; and a page's viewport is the
window less the browser's own UI (tab strip and toolbar, 87 px in Chromium 156's headless=new;
none in chromium-headless-shell). That is what a person's desktop Chrome shows a website:
outer size = available screen, inner size < outer size, availHeight < height.
"""

from __future__ import annotations

from dataclasses import dataclass

# A common desktop taskbar (KDE Plasma, Windows 11 at 100 %).
TASKBAR_HEIGHT = 48
# Chromium keeps its windows at least this wide (its toolbar needs it), on a desktop too: a
# screen narrower than this gets a window that overflows it, as a person's Chrome would.
MIN_WINDOW_WIDTH = 500


@dataclass(frozen=True, slots=True)
class Geometry:
    screen_width: int
    screen_height: int

    @property
    def avail_height(self) -> int:
        return self.screen_height - TASKBAR_HEIGHT

    @property
    def window_width(self) -> int:
        return max(self.screen_width, MIN_WINDOW_WIDTH)

    @property
    def window_height(self) -> int:
        return self.avail_height

    def screen_info_switch(self) -> str:
        """Chromium 156 --screen-info syntax: {origin WxH workAreaBottom=N}."""
        return f"{{0,0 {self.screen_width}x{self.screen_height} workAreaBottom={TASKBAR_HEIGHT}}}"

    def window_bounds(self) -> dict[str, object]:
        """Browser.setWindowBounds's bounds for a window that fills the work area."""
        return {
            "left": 0,
            "top": 0,
            "width": self.window_width,
            "height": self.window_height,
            "windowState": "normal",
        }

    def update_screen(self, screen_id: object) -> dict[str, object]:
        """Emulation.updateScreen's parameters that give screen `screen_id` this geometry."""
        return {
            "screenId": screen_id,
            "left": 0,
            "top": 0,
            "width": self.screen_width,
            "height": self.screen_height,
            "workAreaInsets": {"bottom": TASKBAR_HEIGHT},
        }
