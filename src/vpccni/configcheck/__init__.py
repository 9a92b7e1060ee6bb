"""``vpccni config check`` and ``vpccni config convert``: an ``aws-node`` (or vpccni) DaemonSet
read from a file, its settings validated with the daemon's own parser, compared with the
shipped defaults and with what upstream would actually do, and turned into the values of
``vpccni manifests``.

Modules: ``source`` (the file: one DaemonSet found in a YAML or JSON stream, its containers and
environment), ``upstream`` (upstream's lenient reading of each variable: what it silently ignores
or replaces), ``findings`` (one finding, severities, rendering), ``check`` (every check),
``combinations`` (settings that cannot work together, and on an instance type), ``managed``
(the fields the EKS managed add-on writes back), ``convert`` (the migration).
"""
