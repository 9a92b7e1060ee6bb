"""``vpccni doctor``: the node checked against the operating guidance, each check saying pass,
warn or fail, the evidence it saw, and the one-line fix.

``checks/`` holds the judgements: pure functions from evidence (``evidence.py``, plain values)
to a :class:`~vpccni.doctor.result.Result`; they read nothing. ``probes/`` gathers that evidence
(netlink and iptables through their commands, files, the daemon's socket and HTTP endpoints,
IMDS and EC2 as the daemon sees them) and never changes anything: the only calls to EC2 are
``DryRun`` ones and Describe* reads. ``run.py`` puts the two together.
"""
