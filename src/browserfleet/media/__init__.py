"""Recordings, downloads and the shared live view: what a session's browser shows and saves.

One server-side screencast per browser (screencast.py) feeds the recorder (recorder.py, ffmpeg
in a sandbox of its own) and every view-only viewer; signed links (links.py) hand out the files.
"""
