"""Persistent profiles: a project's saved browser states (cookies, local storage, IndexedDB,
saved passwords, preferences), loaded into a session's browser at its start and saved at its
end. model.py (values), ports.py (what the service needs), service.py (the API's operations),
snapshot.py (which files are state, pure), state.py (reading a saved state safely), loading.py
and saving.py (a session's start and its end step).
"""
