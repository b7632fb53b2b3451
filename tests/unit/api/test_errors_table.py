"""Every domain error has exactly one HTTP mapping."""

import inspect

from browserfleet import errors
from browserfleet.api.errors import HTTP_ERRORS, http_error_for


def _domain_errors() -> list[type[errors.DomainError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.DomainError) and cls is not errors.DomainError
    ]


def test_every_domain_error_is_mapped() -> None:
    missing = [cls.__name__ for cls in _domain_errors() if cls not in HTTP_ERRORS]
    assert missing == []


def test_contract_bodies() -> None:
    assert http_error_for(errors.SessionNotFound()).detail == "Session not found"
    assert http_error_for(errors.ProfileNotFound()).detail == "Profile not found"
    assert http_error_for(errors.TimeoutLimitExceeded()).status == 403
    limit = http_error_for(errors.ConcurrencyLimitReached())
    assert (limit.status, limit.retry_after) == (429, True)
    assert limit.detail.startswith("Too many concurrent active sessions.")
    assert http_error_for(errors.InsufficientCredits()).status == 402
    assert http_error_for(errors.NotAuthenticated()).detail == "Not authenticated"
    assert http_error_for(errors.InvalidApiKey()).detail == "Invalid API key"
    assert http_error_for(errors.HostAtCapacity()).status == 503
