"""Typed identifiers shared by every layer."""

from typing import NewType
from uuid import UUID

SessionId = NewType("SessionId", UUID)
ProjectId = NewType("ProjectId", UUID)
ApiKeyId = NewType("ApiKeyId", UUID)
InstanceId = NewType("InstanceId", str)
