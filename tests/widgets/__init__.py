"""Widgets through their state (no browser)."""
