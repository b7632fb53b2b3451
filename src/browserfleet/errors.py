"""Domain errors: each names a fact. The HTTP edge maps them once (api/errors.py)."""


class DomainError(Exception):
    """Base of every error a caller may need to tell apart."""


class NotAuthenticated(DomainError):
    """No API key was presented."""


class InvalidApiKey(DomainError):
    """The API key is unknown or revoked."""


class SessionNotFound(DomainError):
    """No such session in the caller's project."""


class ProfileNotFound(DomainError):
    """No such profile in the caller's project."""


class AccountNotFound(DomainError):
    """The key's project no longer exists."""


class TimeoutLimitExceeded(DomainError):
    """The requested session timeout is above the 240-minute maximum."""


class InsufficientCredits(DomainError):
    """The project's credits cannot cover the upfront charge."""


class ProfileLimitReached(DomainError):
    """The project already has as many profiles as the server allows one project."""


class ConcurrencyLimitReached(DomainError):
    """The project already runs as many sessions as it may."""


class ProxyCountryUnavailable(DomainError):
    """No managed proxy pool serves that country, and the operator wants no direct fallback."""

    def __init__(self, country: str) -> None:
        super().__init__(country)
        self.country = country


class HostAtCapacity(DomainError):
    """This host cannot start another browser right now."""


class NotOnCluster(DomainError):
    """A feature whose files live beside the browser (profiles, recordings, downloads,
    uploads), asked of a server whose browsers run on cluster nodes, where it is not
    available yet. The message names the feature."""


class BrowserLaunchFailed(DomainError):
    """Chromium did not start or its CDP endpoint never answered."""


class StorageFailed(DomainError):
    """The blob store holding profiles could not be reached or failed."""


class SessionNotRunningHere(DomainError):
    """The session is stopped, or its browser runs on another server (uploads need it here)."""


class InvalidUpload(DomainError):
    """An upload body that is not multipart/form-data with at least one whole file part."""


class DatabaseUnavailable(DomainError):
    """The database cannot be reached or did not answer in time (down, locked past the busy
    timeout, out of space, too many connections); nothing was written, retrying later may work."""


class SecretMismatch(DomainError):
    """This server's secret is not the one the other servers on its database use (their CDP
    tokens would not match); it must not serve."""


class ProjectNotFound(DomainError):
    """No project of that name (CLI)."""


class ApiKeyNotFound(DomainError):
    """No API key with that id or prefix (CLI)."""
