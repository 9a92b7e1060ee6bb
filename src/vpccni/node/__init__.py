"""The node's entrypoints as the DaemonSet runs them: ``vpccni node-init`` (host sysctls and the
plugin binary, in the privileged init container) and ``vpccni node-run`` (ipamd as a child, then
the plugin and, once ipamd answers, the conflist), plus the plugin installer they share with
``vpccni install-cni``."""
