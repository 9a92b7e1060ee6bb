"""The pure core: models and decisions with no I/O, no clock reads and no environment reads.

Everything here is deterministic and standard-library only, so the daemon, the simulator, the
planner and the tests all run the same code. Import-linter keeps the shell out of this package.
"""
