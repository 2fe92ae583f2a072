"""The vocabulary the agent and HQ share: the wire models, the grade scheme and the fault codes.

Nothing here imports the agent, the collectors, the checks or HQ (only the standard library and
pydantic), so a station box installs it without any server dependency. See
docs/architecture.md.
"""
