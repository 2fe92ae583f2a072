"""`python -m simulators run ...`: the same as `stationwatch sim run ...`."""

from simulators.cli import main

main()
