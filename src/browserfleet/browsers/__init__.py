"""Browser runtime: launching, watching and killing Chromium processes. Knows nothing of sessions."""
