"""A simulated station: SNMP, SSH and serial devices on loopback, driven by data.

The devices and their fault conditions are declared in station files: `station.yaml` (the
small demo) and `stations/full.yaml` (every device class); captures of real devices live in
`data/`. Start one with `SimulatedStation` (see `simulators.station`) or
`stationwatch sim run [--config full]`, change conditions through the control API or
`stationwatch sim set`, and make SNMP devices send traps with `stationwatch sim trap`.
"""
