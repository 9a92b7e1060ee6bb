"""The ENIConfig CustomResourceDefinition, as upstream ships it (same name, group, version,
scope, kind and schema), so ENIConfig objects made for the Amazon VPC CNI work unchanged.

Facts from upstream's CRD: ``eniconfigs.crd.k8s.amazonaws.com``, cluster-scoped, version
``v1alpha1`` served and stored, ``spec.subnet`` (a string, required) and ``spec.securityGroups``
(a list of strings), ``status`` an object, unknown fields kept at the top level
(``x-kubernetes-preserve-unknown-fields``) and ``preserveUnknownFields: false``. Applying this
over a cluster that already has upstream's CRD changes nothing the API server uses.
"""

from __future__ import annotations

from typing import Any

from vpccni.core.cluster import ENICONFIG_GROUP, ENICONFIG_PLURAL, ENICONFIG_VERSION

KIND = "ENIConfig"
NAME = f"{ENICONFIG_PLURAL}.{ENICONFIG_GROUP}"


def eniconfig_crd(labels: dict[str, str]) -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    spec_schema = {
        "description": "Where a node's pod ENIs go under custom networking",
        "type": "object",
        "properties": {
            "securityGroups": {
                "description": "Security group ids for the pod ENIs (none: the primary ENI's)",
                "type": "array",
                "items": {"type": "string"},
            },
            "subnet": {
                "description": "The subnet id for the pod ENIs, in the node's availability zone",
                "type": "string",
            },
        },
        "required": ["subnet"],
    }
    schema = {
        "description": "ENIConfig: the pod subnet and security groups for the nodes that name it "
        "(label or annotation k8s.amazonaws.com/eniConfig, or their zone)",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "apiVersion": {"description": "The object's versioned schema", "type": "string"},
            "kind": {"description": "The object's REST resource kind", "type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": {"description": "Not used", "type": "object"},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": NAME, "labels": dict(labels)},
        "spec": {
            "group": ENICONFIG_GROUP,
            "scope": "Cluster",
            "preserveUnknownFields": False,
            "names": {
                "plural": ENICONFIG_PLURAL,
                "singular": KIND.lower(),
                "kind": KIND,
            },
            "versions": [
                {
                    "name": ENICONFIG_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }
