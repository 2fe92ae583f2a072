"""Checks: readings in, graded findings out. Pure logic, no I/O."""
