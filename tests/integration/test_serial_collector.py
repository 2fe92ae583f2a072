"""SerialCollector against real pseudo-terminals: a responder in the test and the simulated tx2."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.base import ReadingSet
from collectors.errors import DeviceUnreachable, DeviceUnreadable
from collectors.profiles import SerialSource, builtin_profiles
from collectors.serial import SerialCollector
from collectors.targets import SerialTarget

pytestmark = pytest.mark.integration

STATUS = b"STATUS FWD=980.5 REF=12.0 VSWR=1.25 AIR=ON FAN=OK PSU=OK TEMP=41.5 SET=1000\r\n"


def profile_source() -> SerialSource:
    """The bundled generic_serial_tx profile's serial section."""
    source = builtin_profiles()["generic_serial_tx"].serial
    assert source is not None
    return source


class PtyDevice:
    """A serial device on a pty: answers each request line with `reply` (bytes, or nothing).

    The device end keeps the slave open as well, so the line survives the collector closing
    it; `unplug()` closes the pty altogether, like pulling a USB adapter.
    """

    def __init__(self, link: Path) -> None:
        self.link = link
        self.reply: bytes = STATUS
        self.requests: list[bytes] = []
        self._fds: tuple[int, int] = (-1, -1)
        self._wake: tuple[int, int] = (-1, -1)
        self._thread: threading.Thread | None = None

    def plug(self) -> None:
        """Create the pty, point the link at it and start answering."""
        master, slave = os.openpty()
        tty.setraw(slave)
        self._fds = (master, slave)
        self._wake = os.pipe()
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(os.ttyname(slave))
        self._thread = threading.Thread(target=self._loop, args=(master, self._wake[0]))
        self._thread.daemon = True
        self._thread.start()

    def unplug(self) -> None:
        """Stop answering and destroy the pty."""
        if self._thread is not None:
            os.write(self._wake[1], b"x")
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (*self._fds, *self._wake):
            if fd >= 0:
                os.close(fd)
        self._fds = self._wake = (-1, -1)

    def _loop(self, master: int, wake: int) -> None:
        line = bytearray()
        while True:
            readable, _, _ = select.select([master, wake], [], [])
            if wake in readable:
                return
            try:
                data = os.read(master, 1024)
            except OSError:
                return
            for byte in data:
                if byte in b"\r\n":
                    if line:
                        self.requests.append(bytes(line))
                        line.clear()
                        if self.reply:
                            os.write(master, self.reply)
                else:
                    line.append(byte)


@pytest.fixture
def device(tmp_path: Path) -> Iterator[PtyDevice]:
    """A plugged-in pty device answering the normal status line."""
    dev = PtyDevice(tmp_path / "ttyTX")
    dev.plug()
    yield dev
    dev.unplug()


@pytest.fixture
async def collector(device: PtyDevice) -> Any:
    """A SerialCollector on the pty device with a short timeout."""
    col = SerialCollector(
        "tx2", SerialTarget(port=str(device.link), timeout_s=0.5), profile_source()
    )
    yield col
    await col.close()


async def test_normal_status_line(device: PtyDevice, collector: SerialCollector) -> None:
    readings = await collector.collect()
    rs = ReadingSet(readings)
    assert rs.get("forward_power_w") == 980.5
    assert rs.get("reflected_power_w") == 12.0
    assert rs.get("vswr") == 1.25
    assert rs.get("power_setpoint_w") == 1000
    assert rs.get("on_air") == "on"
    assert rs.get("fan_state") == "ok"
    assert rs.get("psu_state") == "ok"
    assert rs.get("temp_internal_c") == 41.5
    assert {r.kind for r in readings if r.metric == "on_air"} == {"state"}
    assert {r.unit for r in readings if r.metric == "forward_power_w"} == {"W"}
    assert device.requests == [b"STATUS?"]


async def test_port_stays_open_between_polls(device: PtyDevice, collector: SerialCollector) -> None:
    await collector.collect()
    port = collector._port
    await collector.collect()
    assert collector._port is port and port is not None and port.is_open
    # exclusive: nobody else can open the line while we hold it
    other = SerialCollector("other", SerialTarget(port=str(device.link)), profile_source())
    with pytest.raises(DeviceUnreachable, match="cannot be opened"):
        await other.collect()


async def test_garbage_before_the_status_line_is_skipped(
    device: PtyDevice, collector: SerialCollector
) -> None:
    device.reply = b"STATUS?\r\n\x00\xff\xfe noise\r\nERR 12 BUSY\r\n\r\nSTATUS\r\n" + STATUS
    rs = ReadingSet(await collector.collect())
    assert rs.get("forward_power_w") == 980.5
    assert collector.garbage_lines == 4  # the echo, the noise, ERR and a STATUS without fields
    assert collector.garbage_bytes > 0


async def test_unknown_keys_ignored_and_missing_keys_absent(
    device: PtyDevice, collector: SerialCollector
) -> None:
    device.reply = b"STATUS FWD=10 NEWFIELD=7 AIR=STANDBY\r\n"
    rs = ReadingSet(await collector.collect())
    assert rs.get("forward_power_w") == 10
    assert rs.get("on_air") == "unknown(STANDBY)"
    assert not rs.has("vswr")
    assert len(rs) == 2


async def test_silence_is_unreachable(device: PtyDevice, collector: SerialCollector) -> None:
    device.reply = b""
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable, match="no answer"):
        await collector.collect()
    assert 0.4 < time.monotonic() - started < 1.5


async def test_only_garbage_is_unreadable(device: PtyDevice, collector: SerialCollector) -> None:
    device.reply = b"\xde\xad\xbe\xef line noise\r\nERR\r\n\x80\x81\x82"
    with pytest.raises(DeviceUnreadable, match="no valid STATUS line"):
        await collector.collect()


async def test_a_corrupt_number_is_unreadable(
    device: PtyDevice, collector: SerialCollector
) -> None:
    device.reply = b"STATUS FWD=98#.5 AIR=ON\r\n"
    with pytest.raises(DeviceUnreadable, match="forward_power_w"):
        await collector.collect()


async def test_unplug_and_replug(device: PtyDevice, collector: SerialCollector) -> None:
    assert ReadingSet(await collector.collect()).get("on_air") == "on"
    device.unplug()
    with pytest.raises(DeviceUnreachable):
        await collector.collect()  # the open port fails, or the link is gone on reopen
    with pytest.raises(DeviceUnreachable, match="cannot be opened"):
        await collector.collect()  # still unplugged: nothing to open
    device.plug()
    assert ReadingSet(await collector.collect()).get("on_air") == "on"


async def test_missing_port_is_unreachable(tmp_path: Path) -> None:
    col = SerialCollector("tx9", SerialTarget(port=str(tmp_path / "nothing")), profile_source())
    with pytest.raises(DeviceUnreachable, match="cannot be opened"):
        await col.collect()
    await col.close()


# --- the simulated transmitter tx2 -------------------------------------------------------------


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The simulated station (simulators package), started once for this module."""
    sim = pytest.importorskip("simulators.station", reason="simulators.station not available yet")
    st = sim.SimulatedStation(
        sim.load_station_config(), tmp_path_factory.mktemp("station"), ephemeral_ports=True
    )
    st.start()
    yield st
    st.stop()


@pytest.fixture
async def tx2(station: Any) -> Any:
    """A collector on the simulated tx2 serial port; the station is reset around the test."""
    station.reset()
    d = station.manifest["devices"]["tx2"]
    source = builtin_profiles()[d["profile"]].serial
    assert source is not None
    col = SerialCollector("tx2", SerialTarget(port=d["port"], timeout_s=0.5), source)
    yield col
    await col.close()
    station.reset()


async def test_simulated_tx2_on_air(tx2: SerialCollector) -> None:
    rs = ReadingSet(await tx2.collect())
    assert rs.get("forward_power_w") == 980.5
    assert rs.get("on_air") == "on"
    assert rs.get("power_setpoint_w") == 1000


async def test_simulated_tx2_conditions(tx2: SerialCollector, station: Any) -> None:
    station.set_condition("tx2", "off_air")
    rs = ReadingSet(await tx2.collect())
    assert rs.get("on_air") == "off"
    assert rs.get("forward_power_w") == 0.0
    station.set_condition("tx2", "hang")
    with pytest.raises(DeviceUnreachable):
        await tx2.collect()
    station.reset()  # conditions add up, and hang would win over garbage
    station.set_condition("tx2", "garbage")
    with pytest.raises(DeviceUnreadable):
        await tx2.collect()
    station.reset()
    assert ReadingSet(await tx2.collect()).get("on_air") == "on"
