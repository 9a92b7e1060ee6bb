"""The laptop lab: network namespaces that stand in for a node and its VPC (tests and demos)."""
