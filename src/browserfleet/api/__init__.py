"""The HTTP edge: parse, call one service, render. Domain errors are mapped in api/errors.py."""
