"""Tandem: developer/user package (CLI, local cloud)."""
