"""Cluster simulation on virtual time (``vpccni simulate``): the daemon's decision logic for every
node against the in-process EC2 emulator, driven by a workload, reporting addresses held, EC2 calls,
throttling and time-to-IP.
"""
