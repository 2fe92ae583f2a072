"""Collectors: talk to a device over one protocol and return Readings. No grading, no HQ I/O."""
