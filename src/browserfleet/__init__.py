"""browserfleet: self-hosted cloud browsers speaking the Browser Use Cloud v3 browser API."""

__version__ = "0.1.0"
