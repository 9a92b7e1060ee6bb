"""The CNI plugin ``vpccni-cni``: stdlib-only, started by the container runtime for every pod.

The whole plugin is one module, ``cni.py``, which ``vpccni install-cni`` copies verbatim into the
CNI bin dir. Nothing here may import third-party code or the rest of vpccni (import-linter and
tests/unit/test_layers.py check this): its start-up time is on every pod's critical path.
"""
