"""Browsers on other machines: what runs beside a browser on its node, and how the API process
reaches it."""
