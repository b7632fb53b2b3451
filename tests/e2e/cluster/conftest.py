"""The cluster tests share one real Ray cluster (tests/support/ray_cluster.py)."""

from __future__ import annotations

from ray_cluster import ray_cluster

__all__ = ["ray_cluster"]
