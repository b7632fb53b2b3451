"""Browser runtime: launching, watching and killing Chromium. Knows nothing of sessions."""
