"""The CNI plugin ``vpccni-cni``: stdlib-only, started by the container runtime for every pod.

Nothing in this package may import third-party code or the rest of vpccni (import-linter checks
this): its start-up time is on every pod's critical path.
"""
