"""The compressed archive formats a profile can be stored in, told apart by suffix and magic."""

from __future__ import annotations

from enum import StrEnum

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ArchiveFormat(StrEnum):
    TAR_GZ = "tar.gz"
    TAR_ZST = "tar.zst"

    @property
    def suffix(self) -> str:
        return f".{self.value}"

    @property
    def magic(self) -> bytes:
        return GZIP_MAGIC if self is ArchiveFormat.TAR_GZ else ZSTD_MAGIC

    @classmethod
    def sniff(cls, head: bytes) -> ArchiveFormat | None:
        """The format whose magic number `head` (an archive's first bytes) starts with."""
        return next((fmt for fmt in cls if head.startswith(fmt.magic)), None)
