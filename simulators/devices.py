"""Fault conditions of a simulated device, and the serial transmitter's status model.

A device keeps its set of active conditions; each change rebuilds an immutable snapshot of
what its endpoint serves and swaps it in with one assignment, so endpoint threads (and the
SNMP event loop) read it without taking a lock.
"""

from __future__ import annotations

import logging
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

from simulators.config import (
    BEHAVIOURS,
    DEVICE_CLASS_CONDITIONS,
    KNOWN_CONDITIONS,
    PROTOCOL_BEHAVIOURS,
    RESET_CONDITION,
    FieldValue,
    SerialDeviceSpec,
    SnmpDeviceSpec,
    SshDeviceSpec,
)
from simulators.errors import ConditionError

logger = logging.getLogger(__name__)

Behaviour = Literal["hang", "garbage", "disconnect"]
ConditionValue = str | None
_BEHAVIOUR_ORDER: tuple[Behaviour, ...] = ("hang", "disconnect", "garbage")  # first one wins
Listener = Callable[["SimDevice"], None]


class SimDevice(ABC):
    """A device with a set of active conditions (several at once; `reset` clears all)."""

    protocol: str

    def __init__(self, spec: SnmpDeviceSpec | SshDeviceSpec | SerialDeviceSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.behaviour: Behaviour | None = None  # read by endpoint threads without a lock
        self.flags: frozenset[str] = frozenset()  # active built-ins (host_key_changed, ...)
        self._active: dict[str, ConditionValue] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def replica(self, spec: SnmpDeviceSpec | SshDeviceSpec | SerialDeviceSpec) -> SimDevice:
        """Another device like this one under the spec of a replica (data may be shared)."""
        return type(self)(spec)

    def add_listener(self, listener: Listener) -> None:
        """Call listener(device) after every change of the conditions (in the caller's thread)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling a listener."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self)

    @property
    def allowed_conditions(self) -> list[str]:
        """Conditions this device accepts (declared ones, then its protocol's built-ins)."""
        return [*self.spec.condition_names(), *PROTOCOL_BEHAVIOURS[self.protocol]]

    def active_conditions(self) -> dict[str, ConditionValue]:
        """The active conditions with their values, in declaration order."""
        with self._lock:
            return dict(self._ordered(self._active))

    def set_condition(self, condition: str, value: ConditionValue = None) -> None:
        """Activate a condition (again: replaces its value); `normal` resets the device."""
        if condition == RESET_CONDITION:
            self.reset()
            return
        self._check_name(condition)
        value = self._check_value(condition, value)
        with self._lock:
            active = {**self._active, condition: value}
            self._apply(active)
            self._active = active
        logger.info("%s: condition %s set%s", self.id, condition, f" ({value})" if value else "")
        self._notify()

    def clear_condition(self, condition: str) -> None:
        """Deactivate a condition (no error if it was not active)."""
        if condition == RESET_CONDITION:
            self.reset()
            return
        self._check_name(condition)
        with self._lock:
            active = {k: v for k, v in self._active.items() if k != condition}
            self._apply(active)
            self._active = active
        logger.info("%s: condition %s cleared", self.id, condition)
        self._notify()

    def reset(self) -> None:
        """Clear every condition: the device is back to its captured, healthy state."""
        with self._lock:
            self._apply({})
            self._active = {}
        logger.info("%s: reset to normal", self.id)
        self._notify()

    def _check_name(self, condition: str) -> None:
        if condition not in KNOWN_CONDITIONS:
            raise ConditionError(
                f"unknown condition {condition!r}; known conditions: "
                f"{', '.join(sorted(KNOWN_CONDITIONS))}"
            )
        if condition not in self.allowed_conditions:
            allowed = ", ".join(self.allowed_conditions)
            device_class = self.spec.device_class
            if condition in BEHAVIOURS:
                protocols = [p for p, names in PROTOCOL_BEHAVIOURS.items() if condition in names]
                raise ConditionError(
                    f"condition {condition!r} does not apply to {self.id} (an {self.protocol} "
                    f"device; it is for {', '.join(protocols)} devices); allowed: {allowed}"
                )
            if condition in DEVICE_CLASS_CONDITIONS[device_class]:
                raise ConditionError(
                    f"condition {condition!r} is not simulated by {self.id} (no data for it in "
                    f"the station file); allowed: {allowed}"
                )
            applies = sorted(
                c for c, names in DEVICE_CLASS_CONDITIONS.items() if condition in names
            )
            raise ConditionError(
                f"condition {condition!r} does not apply to {self.id} (a {device_class}; it is "
                f"for: {', '.join(applies)}); allowed: {allowed}"
            )

    def _check_value(self, condition: str, value: ConditionValue) -> ConditionValue:
        """Validate a condition's value; by default conditions take none."""
        if value not in (None, ""):
            raise ConditionError(f"condition {condition!r} of {self.id} takes no value")
        return None

    def _ordered(self, active: dict[str, ConditionValue]) -> list[tuple[str, ConditionValue]]:
        order = self.allowed_conditions
        return sorted(active.items(), key=lambda item: order.index(item[0]))

    def _apply(self, active: dict[str, ConditionValue]) -> None:
        data = [(k, v) for k, v in self._ordered(active) if k not in BEHAVIOURS]
        self._rebuild(data)
        self.behaviour = next((b for b in _BEHAVIOUR_ORDER if b in active), None)
        self.flags = frozenset(k for k in active if k in BEHAVIOURS)

    @abstractmethod
    def _rebuild(self, active: list[tuple[str, ConditionValue]]) -> None:
        """Recompute the served state from the active data conditions (declaration order)."""


def line_noise() -> bytes:
    """Random high bytes with no CR/LF: never a valid line, never a prompt (`garbage`)."""
    return bytes(random.choice(range(0x80, 0x100)) for _ in range(random.randint(16, 96)))


def _field_text(value: FieldValue) -> str:
    return str(value)


class SerialTxDevice(SimDevice):
    """A transmitter answering `STATUS?` with a `KEY=VALUE` status line."""

    protocol = "serial"
    spec: SerialDeviceSpec

    def __init__(self, spec: SerialDeviceSpec) -> None:
        super().__init__(spec)
        self.status_line = b""
        self._rebuild([])

    def _rebuild(self, active: list[tuple[str, ConditionValue]]) -> None:
        fields = dict(self.spec.status)
        for name, _ in active:
            fields.update(self.spec.conditions[name])
        text = " ".join(f"{key}={_field_text(val)}" for key, val in fields.items())
        self.status_line = f"{self.spec.response_prefix}{text}\r\n".encode("ascii")

    def answer(self, request: str) -> bytes:
        """The reply to one request line (a status line, or `ERR`)."""
        if request.strip().upper() == self.spec.request.upper():
            return self.status_line
        return b"ERR\r\n"
