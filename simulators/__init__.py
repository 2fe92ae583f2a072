"""A simulated station: SNMP, SSH and serial devices on loopback, driven by data.

The devices and their fault conditions are declared in `station.yaml`; captures of real
devices live in `data/`. Start it with `SimulatedStation` (see `simulators.station`) or
`stationwatch sim run`, and change conditions through the control API or `stationwatch sim set`.
"""
