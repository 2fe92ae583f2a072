"""Fault codes with a meaning of their own on both sides (the agent raises them, HQ treats some
specially); profile-defined codes (off_air, vswr_high, ...) live in the device profiles."""

from __future__ import annotations

from typing import Final

# The agent could not get an answer from a device (timeout, refused, bad credentials, host key).
UNREACHABLE: Final = "unreachable"
# The device answered, but with nothing the agent could use (garbage, a crash in parsing).
UNREADABLE: Final = "unreadable"
# The site file's definition of a device is invalid: the device is not monitored.
CONFIG_INVALID: Final = "config_invalid"
# A poll yielded none of the profile's key readings: probably the wrong profile.
PROFILE_MISMATCH: Final = "profile_mismatch"
# A significant change of a device's configuration (backup differs from the last one).
CONFIG_CHANGED: Final = "config_changed"
# HQ's own fault: a site's agent has stopped sending heartbeats (dead man's switch).
SITE_UNREACHABLE: Final = "site_unreachable"
