"""Subgroups: metrics per object-size bin and per image group, each with its own limits."""
