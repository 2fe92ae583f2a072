"""Secret-carrying configuration lines as devices print them, and lines that carry none.

Shared by the agent's scrubber tests (tests/unit/test_scrub_lines.py) and HQ's independent
check (tests/hq/test_backups.py). Each secret line gives the raw line, what the agent's built-in
rules must turn it into (the keyword stays, only the value goes), and the secret values that must
not survive.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SecretLine:
    """One raw line, its scrubbed form and the secrets in it."""

    source: str
    raw: str
    scrubbed: str
    secrets: tuple[str, ...]

    @property
    def id(self) -> str:
        """A short test id: source and the start of the scrubbed line."""
        return f"{self.source}: {self.scrubbed.strip()[:50]}"


def _line(source: str, raw: str, scrubbed: str, *secrets: str) -> SecretLine:
    return SecretLine(source, raw, scrubbed, secrets)


IOS_TYPE9 = "$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM"
NXOS_SHA256 = "$5$KMEJGJ$8m1P3Ltvnx7nmmDsj2ByJ7sdm1xtJGD3ZfCnHnmQ5P2"
JUNOS_SHA512 = "$6$fdJ3Yq1h$1bKMs0pnzSm7I8XmD0rLq3Z7QdNc5V2hP9yWuTgR4eFa6bC8xS1kJ0lOiU/"
NXOS_KEY = "0x7e9bb2ea0baf4b0ce4ff7e5e1fcb5e32"

SECRET_LINES: tuple[SecretLine, ...] = (
    # Cisco IOS / IOS-XE (show running-config)
    _line(
        "IOS",
        f"username admin privilege 15 secret 9 {IOS_TYPE9}",
        "username admin privilege 15 secret 9 <removed>",
        IOS_TYPE9,
    ),
    _line(
        "IOS",
        "enable secret 5 $1$pdQG$o8nrSzsGXeaduXrjlvKc91",
        "enable secret 5 <removed>",
        "$1$pdQG$o8nrSzsGXeaduXrjlvKc91",
    ),
    _line(
        "IOS",
        "username backup password 7 0822455D0A16544541",
        "username backup password 7 <removed>",
        "0822455D0A16544541",
    ),
    _line("IOS", " password 7 14141B180F0B", " password 7 <removed>", "14141B180F0B"),
    _line(
        "IOS",
        "snmp-server community Pr1vateRO RO 99",
        "snmp-server community <removed> RO 99",
        "Pr1vateRO",
    ),
    _line(
        "IOS",
        "snmp-server host 10.20.0.15 version 2c Tr4pC0mm",
        "snmp-server host 10.20.0.15 version 2c <removed>",
        "Tr4pC0mm",
    ),
    _line(
        "IOS",
        "snmp-server user monitor mongroup v3 auth sha AuthKey2026 priv aes 128 PrivKey2026",
        "snmp-server user monitor mongroup v3 auth sha <removed> priv aes 128 <removed>",
        "AuthKey2026",
        "PrivKey2026",
    ),
    _line(
        "IOS",
        "tacacs-server host 10.20.0.5 key 7 104D000A0618",
        "tacacs-server host 10.20.0.5 key 7 <removed>",
        "104D000A0618",
    ),
    _line("IOS", "  key-string 7 070C285F4D06", "  key-string 7 <removed>", "070C285F4D06"),
    _line(
        "IOS",
        " ip ospf message-digest-key 1 md5 7 094F471A1A0A",
        " ip ospf message-digest-key 1 md5 7 <removed>",
        "094F471A1A0A",
    ),
    _line(
        "IOS",
        "crypto isakmp key 6 FLgBaJHXdYY_AcHZZMgQ_RhTDJXHUBAAB address 10.1.1.1",
        "crypto isakmp key 6 <removed> address 10.1.1.1",
        "FLgBaJHXdYY_AcHZZMgQ_RhTDJXHUBAAB",
    ),
    _line(
        "IOS",
        " pre-shared-key address 10.2.2.2 key Cr7ptoK3y",
        " pre-shared-key address 10.2.2.2 key <removed>",
        "Cr7ptoK3y",
    ),
    _line("IOS", "   wpa-psk ascii 0 Stud10W1f1", "   wpa-psk ascii 0 <removed>", "Stud10W1f1"),
    _line(
        "IOS",
        " neighbor 10.0.0.2 password 7 02050D480809",
        " neighbor 10.0.0.2 password 7 <removed>",
        "02050D480809",
    ),
    _line(
        "IOS",
        "ntp authentication-key 1 md5 0822455D0A16 7",
        "ntp authentication-key 1 md5 <removed> 7",
        "0822455D0A16",
    ),
    # Cisco NX-OS
    _line(
        "NX-OS",
        f"username admin password 5 {NXOS_SHA256}  role network-admin",
        "username admin password 5 <removed>  role network-admin",
        NXOS_SHA256,
    ),
    _line(
        "NX-OS",
        f"snmp-server user admin network-admin auth md5 {NXOS_KEY} priv {NXOS_KEY} localizedkey",
        "snmp-server user admin network-admin auth md5 <removed> priv <removed> localizedkey",
        NXOS_KEY,
    ),
    _line(
        "NX-OS",
        "snmp-server user ops network-operator auth sha 0x5d4e8b2c91aa priv aes-128"
        " 0x1f2e3d4c5b6a localizedkey",
        "snmp-server user ops network-operator auth sha <removed> priv aes-128 <removed>"
        " localizedkey",
        "0x5d4e8b2c91aa",
        "0x1f2e3d4c5b6a",
    ),
    _line("NX-OS", 'tacacs-server key 7 "fewhg123"', "tacacs-server key 7 <removed>", "fewhg123"),
    _line(
        "NX-OS",
        'radius-server host 10.1.1.5 key 7 "Kfgr 1234" authentication accounting',
        "radius-server host 10.1.1.5 key 7 <removed> authentication accounting",
        "Kfgr",
        "1234",
    ),
    # Huawei VRP (display current-configuration)
    _line(
        "VRP",
        " local-user admin password irreversible-cipher $1a$Ab/gA$Gp!x2lX.^3WqT[QW0wZ~d$",
        " local-user admin password irreversible-cipher <removed>",
        "$1a$Ab/gA$Gp!x2lX",
    ),
    _line(
        "VRP",
        " local-user netops password cipher %^%#Kp<d3-8^eZ4V;0S%^%#",
        " local-user netops password cipher <removed>",
        "Kp<d3-8^eZ4V",
    ),
    _line(
        "VRP",
        "snmp-agent community read cipher %^%#VRPr34d%^%# acl 2000",
        "snmp-agent community read cipher <removed> acl 2000",
        "VRPr34d",
    ),
    _line(
        "VRP",
        " hwtacacs-server shared-key cipher %^%#8w|z7uX%^%#",
        " hwtacacs-server shared-key cipher <removed>",
        "8w|z7uX",
    ),
    _line(
        "VRP",
        "snmp-agent usm-user v3 monitor authentication-mode sha cipher %^%#Au7h%^%#"
        " privacy-mode aes128 cipher %^%#Pr1v%^%#",
        "snmp-agent usm-user v3 monitor authentication-mode sha cipher <removed>"
        " privacy-mode aes128 cipher <removed>",
        "Au7h",
        "Pr1v",
    ),
    _line(
        "VRP",
        " ospf authentication-mode md5 1 plain Ospf-Pl41n",
        " ospf authentication-mode md5 1 plain <removed>",
        "Ospf-Pl41n",
    ),
    _line(
        "VRP",
        "super password level 15 cipher %^%#Sup3rVRP%^%#",
        "super password level 15 cipher <removed>",
        "Sup3rVRP",
    ),
    _line(
        "VRP",
        " security wpa2 psk pass-phrase %^%#W1f1Key%^%# aes",
        " security wpa2 psk pass-phrase <removed> aes",
        "W1f1Key",
    ),
    # H3C / HPE Comware (display current-configuration)
    _line(
        "Comware",
        " key authentication cipher $c$3$dGFjYWNzKey",
        " key authentication cipher <removed>",
        "dGFjYWNzKey",
    ),
    _line(
        "Comware",
        " password hash $h$6$Hj3k2L9aQw$Xq1nR8mTzV0p",
        " password hash <removed>",
        "Hj3k2L9aQw",
    ),
    _line(
        "Comware",
        " snmp-agent community read simple C0mwareR0",
        " snmp-agent community read simple <removed>",
        "C0mwareR0",
    ),
    _line(
        "Comware",
        " pre-shared-key address 10.3.3.3 255.255.255.255 key cipher $c$3$cHNrIke",
        " pre-shared-key address 10.3.3.3 255.255.255.255 key cipher <removed>",
        "cHNrIke",
    ),
    _line(
        "Comware",
        " preshared-key pass-phrase simple W1f1-Comw4re",
        " preshared-key pass-phrase simple <removed>",
        "W1f1-Comw4re",
    ),
    _line(
        "Comware",
        " super password role network-admin hash $h$6$SuP3r$AbCdEf",
        " super password role network-admin hash <removed>",
        "SuP3r",
    ),
    # Juniper Junos (show configuration | display set, and the curly form)
    _line(
        "Junos",
        f'set system root-authentication encrypted-password "{JUNOS_SHA512}"',
        "set system root-authentication encrypted-password <removed>",
        JUNOS_SHA512,
    ),
    _line(
        "Junos",
        "set snmp community public authorization read-only",
        "set snmp community <removed> authorization read-only",
        "public",
    ),
    _line("Junos", "    community St4tionRO {", "    community <removed> {", "St4tionRO"),
    _line(
        "Junos",
        '        secret "$9$HkfznCtp0IcrvW8XxdbsYGjik.fTzF/"; ## SECRET-DATA',
        "        secret <removed>; ## SECRET-DATA",
        "HkfznCtp0IcrvW8X",
    ),
    _line(
        "Junos",
        '            pre-shared-key ascii-text "$9$Wm3xNbs2aJDk.QF/"; ## SECRET-DATA',
        "            pre-shared-key ascii-text <removed>; ## SECRET-DATA",
        "Wm3xNbs2aJDk",
    ),
    _line(
        "Junos",
        'set security ike policy ike-pol pre-shared-key ascii-text "$9$Gq3x.5Tz6A0"',
        "set security ike policy ike-pol pre-shared-key ascii-text <removed>",
        "Gq3x.5Tz6A0",
    ),
    _line(
        "Junos",
        'set system ntp authentication-key 1 type md5 value "$9$Mn8XNbs2aJDk"',
        "set system ntp authentication-key 1 type md5 value <removed>",
        "Mn8XNbs2aJDk",
    ),
    _line(
        "Junos",
        "set protocols ospf area 0.0.0.0 interface ge-0/0/0.0 authentication md5 1 key"
        ' "$9$Wm3xNb.Fz"',
        "set protocols ospf area 0.0.0.0 interface ge-0/0/0.0 authentication md5 1 key <removed>",
        "Wm3xNb.Fz",
    ),
    _line(
        "Junos",
        'set system radius-server 10.1.1.5 secret "$9$kmfz3/tOBEc"',
        "set system radius-server 10.1.1.5 secret <removed>",
        "kmfz3/tOBEc",
    ),
    # Avaya phones (46xxsettings.txt) and Asterisk-based PBXs (sip.conf, voicemail.conf)
    _line("Asterisk", "secret = s3cret", "secret = <removed>", "s3cret"),
    _line("Asterisk", "password=abc123", "password=<removed>", "abc123"),
    _line(
        "Asterisk",
        "md5secret=9b1a0f4e0e1b4a8f2d3c4b5a69788796",
        "md5secret=<removed>",
        "9b1a0f4e0e1b4a8f2d3c4b5a69788796",
    ),
    _line(
        "Asterisk",
        "2010 => 4711,Duty engineer,duty@example.net",
        "2010 => <removed>,Duty engineer,duty@example.net",
        "4711",
    ),
    _line("Avaya", "SET PROCPSWD 27238", "SET PROCPSWD <removed>", "27238"),
    _line("Avaya", "SET SNMPSTRING Av4yaRO", "SET SNMPSTRING <removed>", "Av4yaRO"),
    # Polycom provisioning files and Cisco video codecs
    _line(
        "Polycom",
        '<device device.auth.localAdminPassword.set="1" device.auth.localAdminPassword="45678" />',
        '<device device.auth.localAdminPassword.set="1"'
        ' device.auth.localAdminPassword="<removed>" />',
        "45678",
    ),
    _line(
        "Polycom",
        '<reg reg.1.address="2010" reg.1.auth.userId="2010" reg.1.auth.password="Sip-4711x" />',
        '<reg reg.1.address="2010" reg.1.auth.userId="2010" reg.1.auth.password="<removed>" />',
        "Sip-4711x",
    ),
    _line(
        "Polycom",
        'admin.password "Adm1n Pass!"',
        "admin.password <removed>",
        "Adm1n",
        "Pass!",
    ),
    _line(
        "Cisco codec",
        'xConfiguration SIP Authentication Password: "Sip-Pa55"',
        'xConfiguration SIP Authentication Password: "<removed>"',
        "Sip-Pa55",
    ),
    _line(
        "Cisco codec",
        'xConfiguration NetworkServices SNMP CommunityName: "vc-public"',
        'xConfiguration NetworkServices SNMP CommunityName: "<removed>"',
        "vc-public",
    ),
    # Linux-style files: wpa_supplicant, hostapd, ifupdown, YAML, JSON, .env, snmpd, redis
    _line("wpa_supplicant", '\tpsk="correct horse battery"', '\tpsk="<removed>"', "horse"),
    _line(
        "hostapd",
        "wpa_passphrase=Studio-WiFi-2026",
        "wpa_passphrase=<removed>",
        "Studio-WiFi-2026",
    ),
    _line(
        "ifupdown",
        "    wpa-passphrase correct horse battery staple",
        "    wpa-passphrase <removed>",
        "correct",
        "staple",
    ),
    _line("YAML", "api_key: 4f9c2d1e8b7a6f5e", "api_key: <removed>", "4f9c2d1e8b7a6f5e"),
    _line("YAML", '  password: "db-Pa55"', '  password: "<removed>"', "db-Pa55"),
    _line(
        "YAML",
        "  client_secret: 8f14e45fceea167a5a36dedd4bea2543",
        "  client_secret: <removed>",
        "8f14e45fceea167a5a36dedd4bea2543",
    ),
    _line("JSON", '  "password": "json-Pa55",', '  "password": "<removed>",', "json-Pa55"),
    _line(
        "JSON",
        '{"user":"ops","secret":"json-s3cret"}',
        '{"user":"ops","secret":"<removed>"}',
        "json-s3cret",
    ),
    _line("env", "INFLUX_TOKEN=Zm9vYmFyYmF6cXV4", "INFLUX_TOKEN=<removed>", "Zm9vYmFyYmF6cXV4"),
    _line("tac_plus", 'key = "tacacs secret"', 'key = "<removed>"', "tacacs secret"),
    _line("snmpd", "rocommunity Sn1mpdRO default", "rocommunity <removed> default", "Sn1mpdRO"),
    _line(
        "snmpd",
        'createUser monitor SHA "authPass1" AES "privPass1"',
        "createUser monitor SHA <removed> AES <removed>",
        "authPass1",
        "privPass1",
    ),
    _line("redis", "requirepass foobared", "requirepass <removed>", "foobared"),
    _line(
        "URL",
        "proxy=http://ops:Pr0xyPa55@10.0.0.8:3128",
        "proxy=http://ops:<removed>@10.0.0.8:3128",
        "Pr0xyPa55",
    ),
    # Found missing after issue 11 (each scrubbed by the agent and flagged by HQ on its own).
    _line("IOS", "ip ftp password Ftp-Pa55", "ip ftp password <removed>", "Ftp-Pa55"),
    _line(
        "IOS",
        "ip http client password Http-Pa55",
        "ip http client password <removed>",
        "Http-Pa55",
    ),
    _line(
        "IOS",
        " standby 1 authentication text Hsrp-Pa55",
        " standby 1 authentication text <removed>",
        "Hsrp-Pa55",
    ),
    _line(
        "IOS", " vrrp 1 authentication Vrrp-Pa55", " vrrp 1 authentication <removed>", "Vrrp-Pa55"
    ),
    _line(
        "ASA",
        "passwd 2KFQnbNIdI.2KYOU encrypted",
        "passwd <removed> encrypted",
        "2KFQnbNIdI.2KYOU",
    ),
    _line(
        "ASA",
        "enable password 8Ry2YjIyt7RRXU24 encrypted",
        "enable password <removed> encrypted",
        "8Ry2YjIyt7RRXU24",
    ),
    _line(
        "Junos",
        "set system root-authentication plain-text-password-value Root-Pa55",
        "set system root-authentication plain-text-password-value <removed>",
        "Root-Pa55",
    ),
    _line(
        "FortiOS",
        "    set password ENC SH2xCtGy0Vp1Q2tY7gh3Qk",
        "    set password ENC <removed>",
        "SH2xCtGy0Vp1Q2tY7gh3Qk",
    ),
    _line(
        "FortiOS",
        "    set psksecret ENC Zk9vYmFyYmF6",
        "    set psksecret ENC <removed>",
        "Zk9vYmFyYmF6",
    ),
    _line(
        "Polycom",
        "<password>Poly-Pa55</password>",
        "<password><removed></password>",
        "Poly-Pa55",
    ),
    _line(
        "Polycom",
        "  <AdminPassword>456789</AdminPassword>",
        "  <AdminPassword><removed></AdminPassword>",
        "456789",
    ),
    _line(
        "HTTP",
        "Authorization: Basic YWRtaW46cGFzc3dvcmQ=",
        "Authorization: Basic <removed>",
        "YWRtaW46cGFzc3dvcmQ=",
    ),
    _line(
        "HTTP",
        "Proxy-Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
        "Proxy-Authorization: Bearer <removed>",
        "eyJhbGciOiJIUzI1NiJ9.e30.sig",
    ),
    _line(
        "URL",
        "url: redis://:Redis-Pa55@10.0.0.9:6379/0",
        "url: redis://:<removed>@10.0.0.9:6379/0",
        "Redis-Pa55",
    ),
    _line(
        "shadow",
        f"root:{JUNOS_SHA512}:19000:0:99999:7:::",
        "root:<removed>:19000:0:99999:7:::",
        JUNOS_SHA512,
    ),
    _line(
        "YAML", "password_hash: 9f86d081884c7d65", "password_hash: <removed>", "9f86d081884c7d65"
    ),
    _line("env", "MASTER_KEY=4f3c2a1b0e9d8c7b", "MASTER_KEY=<removed>", "4f3c2a1b0e9d8c7b"),
)

# Lines with no secret in them: neither the agent nor HQ may touch or flag them.
CLEAN_LINES: tuple[str, ...] = (
    "service password-encryption",
    "no service password-recovery",
    " password-recovery enable",
    "security passwords min-length 8",
    "aaa authentication login default local",
    "aaa authentication login default group tacacs+ local",
    "key chain OSPF-KEYS",
    "crypto key generate rsa modulus 2048",
    "password encryption aes",
    " ip ospf authentication message-digest",
    "snmp-server group mongroup v3 priv read monview",
    "snmp-server location Transmitter hall, rack B2",
    "snmp-server enable traps",
    " local-user admin privilege level 15",
    " local-user admin password-force-change disable",
    " local-aaa-user password policy administrator",
    "  password history record number 5",
    " authentication-mode aaa",
    " akm mode psk",
    "set system login password minimum-length 10",
    "set system authentication-order [ radius password ]",
    "    password {",
    'set snmp location "Transmitter hall"',
    "PasswordAuthentication no",
    "PermitEmptyPasswords no",
    "auth_type=userpass",
    "username=2010",
    "hairpin=yes",
    "password_min_length: 12",
    "password_file=/etc/stationwatch/pw",
    "secretName: hq-tls",
    '  "password": "",',
    "public_key: /etc/ssh/ssh_host_ed25519_key.pub",
    "  password:",
    'sip.username "studio1"',
    'aaa authentication password-prompt "Password: "',
    " neighbor 10.0.0.2 send-community both",
    "ssh server authentication-type password",
    "set system services ssh root-login deny-password",
    "password strength-check",
    "no password strength-check",
    " ssh server cipher aes256_ctr aes128_ctr",
    " ssh2 algorithm cipher aes128-ctr aes256-ctr",
    "    community CUST-A members 65000:100;",
    "set policy-options community CUST-A members 65000:100",
    "set protocols ospf area 0.0.0.0 interface ge-0/0/0.0 authentication md5 1 key-id 1",
    "ntp server 10.20.0.1 key 1 prefer",
    "        server 10.20.0.1 key 1;",
    "    key 0 {",
    " ssh user admin authentication-type password",
    "    <key>PasswordAuthentication</key>",
    "standby 1 authentication md5 key-chain HSRP-KEYS",
)
