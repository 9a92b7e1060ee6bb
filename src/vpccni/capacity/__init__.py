"""Capacity planning: the scenario format, the steady state (``vpccni plan``), the EKS subnet
calculator's own figures (``--compat subnet-calc``) and report rendering (tables, JSON, XLSX, PNG).
"""
