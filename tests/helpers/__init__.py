"""Helpers shared by test areas (import as `from helpers.X import ...`; tests/ is on pythonpath)."""
