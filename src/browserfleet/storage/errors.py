"""What can go wrong with stored blobs and archives: one small hierarchy under StorageError.

These are not DomainErrors: services built on the store (profiles, recordings, downloads) decide
what each means for a session or a request and raise their own domain errors.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error of the storage package."""


class InvalidBlobKey(StorageError, ValueError):
    """A key or prefix that is not allowed (traversal, empty segments, control characters...)."""


class BlobNotFound(StorageError):
    """No object under that key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no blob {key!r}")
        self.key = key


class UnsafeSource(StorageError):
    """A file handed to put_file is not a regular file (a symlink, a FIFO, a device...)."""


class StorageUnavailable(StorageError):
    """The store could not be reached or failed (network, timeouts, server errors)."""


class StorageAccessDenied(StorageUnavailable):
    """The store refused the credentials or the operation (wrong keys, missing permission)."""


class BucketNotFound(StorageUnavailable):
    """The configured bucket does not exist."""


class ArchiveError(StorageError):
    """An archive could not be packed or unpacked (corrupt, truncated, unreadable)."""


class ArchiveTooLarge(ArchiveError):
    """The content is over the size (or member count) limit; nothing was kept."""


class UnsafeArchive(ArchiveError):
    """An archive member would escape the target or is not a plain file or directory."""
