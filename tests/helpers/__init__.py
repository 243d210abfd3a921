"""Helpers shared by several test modules and fixtures (test modules import from here, never from each other)."""
