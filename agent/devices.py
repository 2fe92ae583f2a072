"""The device set of a running agent: collectors, graders, identification and one poll loop
per device.

Each device is polled on its own schedule with its own time budget; a device that hangs costs
only its own loop (its collector call is abandoned, never awaited by anyone else). Every poll
outcome goes through the device's grader and, if anything changed, into the fault sink (on disk)
before the uploader is woken. A failed poll and a failed identification are graded by one
mapping (`failure_outcome`), so the fault code and the device state always agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Mapping

from agent.config import AUTO_PROFILE, Device, LoadedConfig, with_profile
from agent.faults import FaultSink
from agent.state import DEVICE_STATES_KEY, StateDir
from checks.base import Finding
from checks.checklists import builtin_checklists
from checks.engine import DeviceGrader
from checks.profile_rules import GradedProfile, builtin_profiles
from collectors.base import Collector, Reading, ReadingSet
from collectors.build import make_collector
from collectors.errors import CollectorError, DeviceUnreadable
from collectors.identify import identify_target
from collectors.snmp import SnmpEngineHolder
from collectors.targets import SnmpTarget
from protocol import faults
from protocol.faults import CONFIG_INVALID, UNREACHABLE, UNREADABLE
from protocol.grades import Grade
from protocol.wire import DeviceState

AGENT_DEVICE = "agent"  # device id of findings about the agent host itself
INSPECTION_CODES = frozenset(
    f"inspection_{item.name}"[:48] for cl in builtin_checklists().values() for item in cl.items
)
# The state a device is in while its reachability fault is raised.
STATE_OF = {UNREACHABLE: DeviceState.UNREACHABLE, UNREADABLE: DeviceState.UNREADABLE}

logger = logging.getLogger(__name__)


def failure_outcome(exc: BaseException) -> tuple[str, DeviceState]:
    """The fault code and device state of a failed poll or identification (one mapping for both).

    An answer we cannot use (DeviceUnreadable, or a collector crash) is "unreadable"; no answer,
    refused credentials or a host key mismatch are "unreachable".
    """
    code = UNREADABLE
    if isinstance(exc, CollectorError) and not isinstance(exc, DeviceUnreadable):
        code = UNREACHABLE
    return code, STATE_OF[code]


def grader_for(device: Device) -> DeviceGrader:
    """The grader of a device: its checks, reachability and its profile's key readings."""
    # Faults raised outside polling (traps, logs, config changes, inspections) must
    # survive a restart: the grader must not retire them as "unknown checks".
    profile = device.profile
    extra = profile.event_codes() | INSPECTION_CODES
    return DeviceGrader(
        device.id,
        device.checks,
        profile.unreachable_grade,
        extra,
        key_metrics=profile.key_per_row(),
        profile_name=profile.name,
    )


def poll_budget(device: Device, interval: float) -> float:
    """How long one poll of a device may take before it counts as unreachable."""
    target_timeout = getattr(device.target, "timeout_s", 5.0)
    retries = getattr(device.target, "retries", 0)
    wanted = target_timeout * (retries + 1) * 4 + 2
    return max(1.0, min(wanted, interval * 0.9, 120.0))


class DeviceSet:
    """The configured devices: their collectors, graders, states and poll loops."""

    def __init__(
        self,
        faults: FaultSink,
        loaded: LoadedConfig,
        profiles: Mapping[str, GradedProfile] | None = None,
    ) -> None:
        """`profiles`: those identification chooses from (default: the shipped ones)."""
        self.faults = faults
        self._profiles = profiles
        self.engine = SnmpEngineHolder()
        # One dict for the set's whole life (reloads refill it): listeners hold it.
        self.collectors: dict[str, Collector] = {}
        self.graders: dict[str, DeviceGrader] = {}
        self.states: dict[str, DeviceState] = {}
        self._poll_tasks: dict[str, asyncio.Task[None]] = {}
        self._inflight: dict[str, asyncio.Future[list[Reading]]] = {}
        self._states_dirty = True
        self.install(loaded)

    @property
    def devices(self) -> list[Device]:
        """The usable devices of the config (identified ones with their profile)."""
        return self.loaded.devices

    def device(self, device_id: str) -> Device | None:
        """A device by id."""
        return next((d for d in self.loaded.devices if d.id == device_id), None)

    def install(self, loaded: LoadedConfig) -> None:
        """Adopt a (re)loaded config: graders, device states, classes for new events."""
        self.loaded = loaded
        self.site = loaded.agent.site
        self.state_dir = StateDir(loaded.agent.state_dir)
        self.graders = {d.id: grader_for(d) for d in loaded.devices}
        old = self.states
        self.states = {d.id: old.get(d.id, DeviceState.UNKNOWN) for d in loaded.devices}
        self.states |= {b.id: DeviceState.DISABLED for b in loaded.bad_devices if b.id}
        self._states_dirty = True
        self._set_classes()

    def _set_classes(self) -> None:
        classes = {d.id: str(d.profile.device_class) for d in self.loaded.devices}
        self.faults.outbox.set_device_classes(classes)

    def _collector(self, device: Device) -> Collector:
        return make_collector(
            device.id,
            device.profile,
            device.target,
            snmp_engine=self.engine,
            known_hosts=self.state_dir.known_hosts,
        )

    async def start(self) -> None:
        """Build collectors, reconcile faults with the config, start one poll loop per device."""
        if any(d.profile.protocol == "snmp" for d in self.loaded.devices):
            await self.engine.warm_up()
        for d in self.loaded.devices:
            if not d.config.enabled:
                self._set_state(d.id, DeviceState.DISABLED)
                continue
            self.collectors[d.id] = self._collector(d)
        await self.reconcile()
        for d in self.loaded.devices:
            if d.id in self.collectors:
                task = asyncio.create_task(self.poll_loop(d, self.collectors[d.id]))
                self._poll_tasks[d.id] = task

    async def stop(self) -> None:
        """Stop the poll loops and close the collectors."""
        tasks = list(self._poll_tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._poll_tasks.clear()
        for c in self.collectors.values():
            with contextlib.suppress(Exception):
                await c.close()
        self.collectors.clear()
        self._inflight.clear()

    def close(self) -> None:
        """Release the SNMP engine (after `stop`)."""
        self.engine.close()

    async def reconcile(self) -> None:
        """At start: raise faults for broken devices; clear those of removed devices/checks."""
        tracker = self.faults.tracker
        changes = []
        now = time.time()
        known = set(self.graders) | {AGENT_DEVICE}  # inspection items about the agent host
        for bad in self.loaded.bad_devices:
            for problem in bad.problems:
                logger.error("site=%s device=%s disabled: %s", self.site, bad.id or "?", problem)
            if bad.id:
                known.add(bad.id)
                detail = "; ".join(bad.problems)[:2000]
                finding = Finding(
                    CONFIG_INVALID,
                    "",
                    True,
                    Grade.GENERAL,
                    faults.title(CONFIG_INVALID),
                    detail,
                    title_zh=faults.title_zh(CONFIG_INVALID),
                )
                changes += tracker.apply(bad.id, [finding], now)
        unidentified = {d.id for d in self.loaded.devices if d.profile is AUTO_PROFILE}
        for dev_id, grader in self.graders.items():
            if dev_id not in unidentified:  # its checks are not known yet: keep its faults
                changes += grader.retire_unknown(tracker, now)
            if tracker.view(dev_id).is_active(CONFIG_INVALID):
                changes += tracker.apply(
                    dev_id, [Finding(CONFIG_INVALID, "", False, Grade.GENERAL, "", "fixed")], now
                )
        for dev_id in {f.device_id for f in tracker.active.values()} - known:
            changes += tracker.clear_all(dev_id, set(), "device removed from configuration", now)
        await self.faults.commit(changes)

    def _set_state(self, device_id: str, state: DeviceState) -> None:
        if self.states.get(device_id) != state:
            self.states[device_id] = state
            self._states_dirty = True

    async def _failed(self, device_id: str, code: str, message: str) -> None:
        """Raise a reachability fault and put the device in the state that goes with it."""
        grader = self.graders[device_id]
        await self.faults.commit(grader.on_error(code, message, self.faults.tracker, time.time()))
        self._set_state(device_id, STATE_OF[code])

    async def poll_once(
        self, device: Device, collector: Collector, budget: float
    ) -> list[Reading] | None:
        """Poll one device once, grade the outcome, record what changed; the readings or None."""
        previous = self._inflight.get(device.id)
        if previous is not None and not previous.done():
            await self._failed(device.id, UNREACHABLE, "previous poll still hanging")
            return None
        task = asyncio.ensure_future(collector.collect())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._inflight[device.id] = task
        done, _ = await asyncio.wait({task}, timeout=budget)
        readings: list[Reading] | None = None
        if not done:
            await self._failed(device.id, UNREACHABLE, f"no answer within {budget:.0f} s")
        else:
            del self._inflight[device.id]
            if (exc := task.exception()) is not None:
                if not isinstance(exc, CollectorError):
                    logger.error(
                        "site=%s device=%s collector crashed: %r", self.site, device.id, exc
                    )
                code, _ = failure_outcome(exc)
                await self._failed(device.id, code, str(exc)[:500] or type(exc).__name__)
            else:
                readings = task.result()
                grader = self.graders[device.id]
                tracker = self.faults.tracker
                changes = grader.on_readings(ReadingSet(readings), tracker, time.time())
                self._set_state(device.id, DeviceState.OK)
                await self.faults.commit(changes)
        if self._states_dirty:  # a device changed state: keep `agent status` current
            await self.faults.in_db(self.save_states)
        return readings

    async def poll_now(self, device: Device) -> list[Reading] | None:
        """Poll a device out of its schedule (a job asks for fresh readings); None if it is not
        polled or did not answer."""
        collector = self.collectors.get(device.id)
        if collector is None:
            return None
        interval = device.config.poll_interval_s or self.loaded.agent.intervals.poll_s
        return await self.poll_once(device, collector, poll_budget(device, max(interval, 30)))

    async def identify(self, device: Device) -> Device | None:
        """Identify an SNMP device's profile (collectors.identify) and adopt it if one answers."""
        assert isinstance(device.target, SnmpTarget)  # config allows "auto" for SNMP only
        profiles = builtin_profiles() if self._profiles is None else self._profiles
        try:
            found = await identify_target(device.id, device.target, self.engine, profiles)
        except CollectorError as exc:
            code, _ = failure_outcome(exc)
            await self._failed(device.id, code, str(exc)[:500])
            return None
        if found.profile is None:
            await self._failed(device.id, UNREADABLE, found.failure()[:500])
            return None
        profile = profiles[found.profile.name]
        try:
            known = with_profile(device, profile)
        except ValueError as exc:  # a site override names a check this profile lacks
            msg = f"identified as {profile.name}, but its checks: {exc}"[:500]
            await self._failed(device.id, UNREADABLE, msg)
            return None
        for i, d in enumerate(self.loaded.devices):
            if d.id == device.id:
                self.loaded.devices[i] = known
        self.graders[device.id] = grader_for(known)
        self.collectors[device.id] = self._collector(known)
        self._set_classes()
        logger.info(
            "site=%s device=%s identified as %s (%s %s) in %d SNMP requests%s",
            self.site,
            device.id,
            profile.name,
            profile.vendor,
            profile.model,
            found.requests,
            f"; not {', '.join(found.refused)} (none of their key OIDs answered)"
            if found.refused
            else "",
        )
        return known

    async def poll_loop(self, device: Device, collector: Collector) -> None:
        """Poll a device every interval until cancelled (identifying it first if need be)."""
        interval = device.config.poll_interval_s or self.loaded.agent.intervals.poll_s
        budget = poll_budget(device, interval)
        loop = asyncio.get_running_loop()
        # Spread the first polls over the interval so a thousand devices don't fire at once.
        next_due = loop.time() + random.uniform(0, interval)  # noqa: S311
        while True:
            await asyncio.sleep(max(0.0, next_due - loop.time()))
            try:
                if device.profile is AUTO_PROFILE:
                    known = await self.identify(device)
                    if known is not None:
                        device, collector = known, self.collectors[device.id]
                if device.profile is not AUTO_PROFILE:
                    await self.poll_once(device, collector, budget)
            except Exception:
                logger.exception("site=%s device=%s poll failed", self.site, device.id)
            next_due += interval
            now = loop.time()
            if next_due < now:  # overran: keep the phase, skip missed slots
                next_due += interval * (int((now - next_due) // interval) + 1)

    def save_states(self) -> None:
        """Persist device states for `stationwatch agent status` (a separate process); call it
        on the fault sink's database thread."""
        if self._states_dirty:
            self._states_dirty = False
            states = {k: v.value for k, v in self.states.items()}
            self.faults.outbox.set_meta(DEVICE_STATES_KEY, json.dumps(states))
