"""``vpccni support-bundle``: one tarball for a support case, complete and safe.

``collect.py`` gathers each section (introspection, metrics, status, logs, the checkpoint,
``ip`` and ``iptables-save`` output, sysctls, the CNI conf dir and plugin, kubelet's max pods)
with the doctor's probes, read-only; ``redact.py`` takes pod names out unless asked to keep them
(secrets are always taken out, with the daemon's own log redaction); ``archive.py`` caps every
section, writes the ``tar.gz`` and its index, which says what is inside, what was cut, and what
could not be collected and why (the daemon being down, for one).
"""
