"""Kubernetes manifests for running vpccni on every node, built as plain Python objects.

``variables`` is the catalogue of environment variables (upstream's, with its shipped-manifest
defaults, and vpccni's own) and validates a DaemonSet's environment with the daemon's own parser;
``rbac`` declares the Kubernetes API calls the daemon makes and turns them into ClusterRole
rules; ``manifests`` builds the ServiceAccount, ClusterRole, ClusterRoleBinding and DaemonSet;
``render`` turns them into YAML documents and a kustomize base. ``vpccni manifests`` and
``tools/render_manifests.py`` are the callers (see docs/deploy.md).
"""
