"""Errors of the simulated station.

SimulatorError
├── StationConfigError   station.yaml or a data file is invalid (names file and field)
├── UnknownDeviceError   no device with that id                      (control API: 404)
└── ConditionError       unknown condition, not for this device, bad value (API: 400)
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Base of every error raised by the simulators package."""


class StationConfigError(SimulatorError, ValueError):
    """A station definition or snmprec file is invalid; the message names file and field."""


class UnknownDeviceError(SimulatorError, LookupError):
    """No device with that id in the station."""


class ConditionError(SimulatorError, ValueError):
    """A condition is unknown, does not apply to the device, or has a bad value."""
