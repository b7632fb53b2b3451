"""Where each kind of file lives in a blob store: the only place key shapes are spelled out.

  profiles/<project>/<profile>/<version><.tar.gz|.tar.zst>   one archive per saved version
  recordings/<project>/<session>.mp4                          a session's recording
  downloads/<project>/<session>/<name>                        files a session's browser downloaded

The project comes first below each kind, so one project's files share a prefix (usage, deletion)
and an S3 lifecycle rule can be set per kind. Every part is checked as a key segment: a download's
name comes from the page, and must not be able to name another session's files.
"""

from __future__ import annotations

from uuid import UUID

from browserfleet.storage.archive_format import ArchiveFormat
from browserfleet.storage.keys import SEPARATOR, check_key, check_segment

PROFILES = "profiles"
RECORDINGS = "recordings"
DOWNLOADS = "downloads"
RECORDING_SUFFIX = ".mp4"

Ident = UUID | str


def profile_prefix(project: Ident, profile: Ident) -> str:
    """Every version of one profile."""
    return _folder(PROFILES, project, profile)


def profile_version_key(
    project: Ident, profile: Ident, version: str, archive_format: ArchiveFormat
) -> str:
    return check_key(profile_prefix(project, profile) + _segment(version) + archive_format.suffix)


def recording_key(project: Ident, session: Ident) -> str:
    return check_key(_folder(RECORDINGS, project) + _segment(session) + RECORDING_SUFFIX)


def downloads_prefix(project: Ident, session: Ident) -> str:
    """Every download of one session."""
    return _folder(DOWNLOADS, project, session)


def download_key(project: Ident, session: Ident, name: str) -> str:
    """The key of a downloaded file; InvalidBlobKey if the name cannot be a single segment."""
    return check_key(downloads_prefix(project, session) + check_segment(name))


def project_prefixes(project: Ident) -> tuple[str, ...]:
    """Everything a project has stored, one folder per kind (to measure or delete it)."""
    return tuple(_folder(kind, project) for kind in (PROFILES, RECORDINGS, DOWNLOADS))


def _folder(*parts: Ident) -> str:
    return "".join(_segment(part) + SEPARATOR for part in parts)


def _segment(part: Ident) -> str:
    return check_segment(str(part))
