"""The StationWatch agent: polls a station's devices and delivers graded faults to HQ."""

__version__ = "0.1.0"
