"""What the doctor reads from the node, the daemon and the cloud; read-only, every failure
turned into a :class:`~vpccni.doctor.evidence.Missing` that says why."""
