"""vpccni: a Python implementation of the Amazon VPC CNI.

Kept import-free on purpose: the CNI plugin imports this package on every pod ADD/DEL, so nothing
here may cost start-up time.
"""

__version__ = "0.1.0"
