"""The account view of a project: limits, live usage and credit balance."""

from __future__ import annotations

from dataclasses import dataclass

from browserfleet.auth.model import Principal, Project
from browserfleet.auth.ports import ProjectStore
from browserfleet.errors import AccountNotFound


@dataclass(frozen=True, slots=True)
class Account:
    project: Project
    concurrent_limit: int
    active_sessions: int
    balance_micros: int | None  # None: unlimited credits


class AccountReader:
    def __init__(self, projects: ProjectStore, default_concurrent_limit: int) -> None:
        self._projects = projects
        self._default_limit = default_concurrent_limit

    async def account(self, principal: Principal) -> Account:
        project = await self._projects.get_project(principal.project_id)
        if project is None:
            raise AccountNotFound()
        return Account(
            project=project,
            concurrent_limit=project.concurrent_limit or self._default_limit,
            active_sessions=project.active_count,
            balance_micros=project.credit_balance_micros,
        )
