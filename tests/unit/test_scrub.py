"""Scrubbing secrets from real-looking IOS, VRP, Comware and PBX configurations; noise lines;
local versions and significant-change decisions of the backup store."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from checks.config_change import DETAIL_MAX
from collectors.backups import ConfigStore
from collectors.profiles import BackupSpec, builtin_profiles
from collectors.scrub import REMOVED, Scrubber, normalise
from protocol.faults import CONFIG_CHANGED
from protocol.grades import Grade
from tests.backup_grading import GradingStore

CONFIGS = Path(__file__).resolve().parent.parent / "data" / "configs"

# Every secret written in the sample configurations; none may survive scrubbing.
SECRETS = {
    "ios_switch.cfg": [
        "$1$pdQG$o8nrSzsGXeaduXrjlvKc91",
        "$1$Hd2W$1nZk1Yc8aQm3TqVd5bJyX/",
        "0822455D0A16544541",
        "3082022B",
        "2A864886",
        "Pr1vateRO",
        "Pr1vateRW",
        "Tr4pC0mm",
        "AuthKey2026",
        "PrivKey2026",
        "104D000A0618",
        "R4d1usK3y",
        "NtpK3y1",
        "14141B180F0B",
    ],
    "huawei_vrp.cfg": [
        "$1a$Ab/gA$",
        "Kp<d3-8^eZ4V",
        "8w|z7uX",
        "Rr4d!us",
        "VRPr34d",
        "VRPwr1t3",
        "Au7h",
        "Pr1v",
        "0spfK",
        "D8E2B5A1",
    ],
    "hpe_comware.cfg": [
        "$h$6$Hj3k2L9aQw",
        "$h$6$SuP3r",
        "C0mwareR0",
        "ZW5jcnlwdGVk",
        "Auth7key",
        "Priv7key",
        "dGFjYWNz",
        "T4cPlain",
        "R4dPlain",
        "cHNr",
    ],
    "codec.cfg": ["Adm1n Pass!", "Pass!", "vc1-public", "s1p-Secret", "83412"],
    "pbx.cfg": [
        "$1$mERr$hx5rVt7rPNoS4wqbXKX7m0",
        "pbx1-secret",
        "$1$Xk2p$Q9oFq1mYwV0n3bZkS7uJd.",
        "s3cr3tRO",
        "Sip7rUnk!",
        "4711",
    ],
}
# Lines that carry no secret and must come through untouched.
KEPT = {
    "ios_switch.cfg": [
        "service password-encryption",
        "hostname TX-HALL-SW1",
        " description Transmitter A",
        "snmp-server community <removed> RO 99",
        "ntp server 10.20.0.1",
        "  quit",
    ],
    "huawei_vrp.cfg": [
        " local-user admin privilege level 15",
        " ospf authentication-mode md5 1 cipher <removed>",
    ],
    "hpe_comware.cfg": [" password-recovery enable", " service-type ssh terminal"],
    "pbx.cfg": ["snmp-server location Transmitter hall, rack B2", ' name "Duty engineer"'],
    "codec.cfg": ['sip.username "studio1"', "admin.password <removed>"],
}


@pytest.fixture
def scrubber(request: pytest.FixtureRequest) -> Scrubber:
    """The built-in rules plus the PBX (or, for codec.cfg, the MCU) profile's own."""
    name = getattr(request, "param", "generic_pbx_ssh")
    return Scrubber.for_backup(builtin_profiles()[name].backup)


@pytest.mark.parametrize(
    ("name", "scrubber"),
    [(n, "generic_mcu_ssh" if n == "codec.cfg" else "generic_pbx_ssh") for n in sorted(SECRETS)],
    indirect=["scrubber"],
)
def test_no_secret_survives(name: str, scrubber: Scrubber) -> None:
    """Every secret of a realistic configuration is replaced; other lines stay as they were."""
    raw = (CONFIGS / name).read_text(encoding="utf-8")
    out = scrubber.scrub(raw)
    for secret in SECRETS[name]:
        assert secret not in out, f"{secret!r} survived in {name}"
    for line in KEPT[name]:
        assert line in out.splitlines(), f"{line!r} lost from {name}"
    assert scrubber.scrub(out) == out  # idempotent


def test_profile_rule_adds_to_builtin(scrubber: Scrubber) -> None:
    """The PBX profile's auth-password rule scrubs what the built-in rules would not know."""
    assert "Sip7rUnk!" not in scrubber.scrub(" auth-password Sip7rUnk!\n")
    plain = Scrubber.for_backup(BackupSpec(secrets=[r"token (?P<secret>\w+)"], default_rules=False))
    assert plain.scrub("api token abc123 password x") == f"api token {REMOVED} password x"


def test_pem_block_scrubbed() -> None:
    """A PEM private key disappears whole."""
    text = "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE KEY-----\ny\n"
    out = Scrubber.for_backup(None).scrub(text)
    assert "MIIEow" not in out and out.startswith("x\n") and out.endswith("y\n")


def test_a_line_ending_in_password_does_not_eat_the_next_line() -> None:
    """Rules stay on one line: a bare `password` keyword keeps the following line intact."""
    out = Scrubber.for_backup(None).scrub("line vty 0 4\n password\n login local\n")
    assert out == "line vty 0 4\n password\n login local\n"


@pytest.mark.parametrize(
    "line",
    [
        "! Last configuration change at 09:14:02 UTC Mon Nov 16 2026 by maint",
        "! NVRAM config last updated at 14:02:15 UTC Mon Nov 16 2026",
        "ntp clock-period 36028797",
        "Building configuration...",
        "Current configuration : 4211 bytes",
        "!Last configuration was saved at 2026-11-16 14:05:40+08:00 by admin",
        "switch uptime is 3 weeks, 2 days",
    ],
)
def test_noise_lines(line: str) -> None:
    """Timestamps, change headers, clock-period and uptime lines are noise."""
    assert Scrubber.for_backup(builtin_profiles()["huawei_vrp"].backup).is_noise(line)


def test_significant_lines_are_not_noise() -> None:
    """Real configuration lines are significant."""
    s = Scrubber.for_backup(None)
    for line in ("hostname PBX-01", "ntp server 10.20.0.1", "username maint password 0 <removed>"):
        assert not s.is_noise(line)


def test_normalise() -> None:
    """CRLF, trailing blanks and surrounding empty lines go; one final newline stays."""
    assert normalise("\r\n\r\nhostname a  \r\nend\r\n\r\n") == "hostname a\nend\n"


PBX = (CONFIGS / "pbx.cfg").read_text(encoding="utf-8")
T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def test_store_first_unchanged_noise_changed(tmp_path: Path, scrubber: Scrubber) -> None:
    """Baseline, identical, noise-only and significant captures are told apart."""
    store = GradingStore(tmp_path)
    first = store.record("pbx1", PBX, scrubber, T0)
    assert first.status == "first" and first.path is not None
    assert "pbx1-secret" not in first.path.read_text(encoding="utf-8")
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.path.parent.stat().st_mode) == 0o700
    assert first.findings(active=False) == []

    same = store.record("pbx1", PBX.replace("\n", "\r\n"), scrubber, T0 + timedelta(hours=1))
    assert same.status == "unchanged" and same.findings(active=False) == []

    noisy = PBX.replace("09:14:02 UTC Mon Nov 16", "07:30:11 UTC Thu Nov 19")
    noise = store.record("pbx1", noisy, scrubber, T0 + timedelta(hours=2))
    assert noise.status == "noise" and noise.path is None
    assert noise.findings(active=False) == []

    changed_raw = noisy.replace("pbx1-secret", "pbx1-n3w-secret") + "extension 2099\n"
    changed = store.record("pbx1", changed_raw, scrubber, T0 + timedelta(hours=3))
    assert changed.status == "changed" and changed.previous_sha256 == first.sha256
    assert "+extension 2099" in changed.diff
    assert "n3w" not in changed.diff and "pbx1-secret" not in changed.diff
    [finding] = changed.findings(active=False)
    assert finding.code == CONFIG_CHANGED and finding.active and finding.grade is Grade.MINOR
    assert "+extension 2099" in finding.detail and len(finding.detail) <= DETAIL_MAX
    assert [f.active for f in changed.findings(active=True)] == [False, True]
    assert [v["sha256"] for v in store.versions("pbx1")] == [first.sha256, changed.sha256]

    again = store.record("pbx1", changed_raw, scrubber, T0 + timedelta(hours=4))
    [cleared] = again.findings(active=True)
    assert not cleared.active


def test_only_the_password_changed_is_no_change(tmp_path: Path, scrubber: Scrubber) -> None:
    """A changed secret scrubs to the same text: the store cannot see it (and must not)."""
    store = ConfigStore(tmp_path)
    store.record("pbx1", PBX, scrubber, T0)
    result = store.record("pbx1", PBX.replace("pbx1-secret", "other"), scrubber, T0)
    assert result.status == "unchanged"


def test_long_diff_is_cut_for_the_fault(tmp_path: Path, scrubber: Scrubber) -> None:
    """A huge change still fits a fault event and says how much was left out."""
    store = GradingStore(tmp_path)
    store.record("sw1", PBX, scrubber, T0)
    big = PBX + "".join(f"interface Gi0/{i}\n description port {i}\n" for i in range(400))
    result = store.record("sw1", big, scrubber, T0 + timedelta(minutes=1))
    detail = result.findings(active=False)[0].detail
    assert len(detail) <= DETAIL_MAX and "more diff lines" in detail


def test_versions_are_pruned(tmp_path: Path, scrubber: Scrubber) -> None:
    """Only the newest `keep` versions stay on disk."""
    store = ConfigStore(tmp_path, keep=3)
    for i in range(6):
        store.record("sw1", PBX + f"vlan {i}\n", scrubber, T0 + timedelta(minutes=i))
    kept = store.versions("sw1")
    assert len(kept) == 3
    assert len(list(store.device_dir("sw1").glob("*.cfg"))) == 3
    assert (store.latest_text("sw1") or "").endswith("vlan 5\n")


def test_unsafe_device_id_refused(tmp_path: Path) -> None:
    """A device id that would leave the backup directory is refused."""
    with pytest.raises(ValueError, match="directory name"):
        ConfigStore(tmp_path).device_dir("../etc")
