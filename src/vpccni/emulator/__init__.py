"""The local EC2 + IMDS emulator: an honest fake of the parts of AWS the CNI talks to.

``model`` (with ``store``, ``network``, ``vpc_cidrs``, ``security_groups``, ``interfaces``,
``addressing``, ``records``, ``history``) is the pure EC2 model: VPCs with their IPv4 blocks,
subnets, security groups, instances and ENIs with EC2's limits and error codes, on a clock the
caller passes in. ``realism`` adds AWS's rate limits, delays and injected faults;
``service`` combines both behind the EC2 action names; ``imds`` renders a node's instance
metadata as it was ``lag`` seconds ago. ``wire`` speaks the EC2 Query protocol (using botocore's
service model) and ``server`` serves it all over HTTP on loopback. See docs/emulator.md.
"""
