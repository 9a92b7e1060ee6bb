"""The node daemon ``vpccni ipamd``: IPAM service, pool manager, plugin API, introspection."""
