"""Where a browser's own files are: on the host (for the server) and as the browser sees them.

The two differ once a browser runs in a sandbox with its own filesystem view; the CDP gateway
speaks in the browser's paths, the API and the stores in the host's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DOWNLOADS_DIR = "downloads"
UPLOADS_DIR = "uploads"


@dataclass(frozen=True, slots=True)
class BrowserFiles:
    """A session's downloads and uploads directories, seen from both sides."""

    host_downloads: Path
    host_uploads: Path
    downloads: PurePosixPath  # as the browser sees it (what CDP commands must name)
    uploads: PurePosixPath

    @classmethod
    def unsandboxed(cls, workdir: Path) -> BrowserFiles:
        """A browser that sees the host's filesystem: both sides are the same paths."""
        downloads, uploads = workdir / DOWNLOADS_DIR, workdir / UPLOADS_DIR
        return cls(downloads, uploads, PurePosixPath(downloads), PurePosixPath(uploads))

    def create(self) -> None:
        """Make both host directories (the workdir exists already)."""
        for path in (self.host_downloads, self.host_uploads):
            path.mkdir(mode=0o700, exist_ok=True)
