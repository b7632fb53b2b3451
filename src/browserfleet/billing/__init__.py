"""Money: pure pricing rules and the append-only ledger's vocabulary."""
