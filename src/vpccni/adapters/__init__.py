"""Adapters: the edge of vpccni where files, sockets, EC2, netlink and clocks are touched.

Each module implements one port for the pure core and translates library errors into
``vpccni.errors``.
"""
