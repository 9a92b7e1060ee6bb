"""Policy evaluation (vpccni.emulator.iam) against AWS's documented semantics.

Every case names the page of the IAM User Guide it follows (https://docs.aws.amazon.com/IAM/
latest/UserGuide/<page>.html), abbreviated:

* EVAL      reference_policies_evaluation-logic (explicit deny > allow > implicit deny)
* ACTION    reference_policies_elements_action (wildcards; prefix and name case-insensitive)
* RESOURCE  reference_policies_elements_resource (wildcards within ARN segments; a * ending a
            segment may run past colons; no wildcard in the service segment)
* CONDITION reference_policies_elements_condition (condition key names are case-insensitive)
* OPERATORS reference_policies_elements_condition_operators (StringEquals case-sensitive,
            StringLike * and ?; a missing key makes the condition false, a negated one true;
            ...IfExists true when the key is missing)
* MULTI     reference_policies_condition-logic-multiple-context-keys-or-values (operators AND,
            keys AND, values OR, negated values NOR)
* SETS      reference_policies_condition-single-vs-multi-valued-context-keys (ForAllValues true
            for a missing/empty set, ForAnyValue false)
* EC2TAG    EC2 User Guide supported-iam-actions-tagging (ec2:CreateAction)
* VERSION   reference_policies_elements_version; VARIABLES reference_policies_variables
"""

from __future__ import annotations

from typing import Any

import pytest

from vpccni.emulator.iam import Outcome, PolicyError, load_policy, matches, resource_matches
from vpccni.errors import VpccniError

ENI = "arn:aws:ec2:us-west-2:123456789012:network-interface/eni-0123456789abcdef0"
SUBNET = "arn:aws:ec2:us-west-2:123456789012:subnet/subnet-01234567"
ALLOW = Outcome.ALLOW
DENY = Outcome.EXPLICIT_DENY
NONE = Outcome.IMPLICIT_DENY


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any = "ec2:*", resource: Any = "*", **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def deny(action: Any = "ec2:*", resource: Any = "*", **condition: Any) -> dict[str, Any]:
    return {**allow(action, resource, **condition), "Effect": "Deny"}


def cond(operator: str, key: str, values: Any) -> dict[str, Any]:
    return {operator: {key: values}}


def decide(document: Any, action: str, arn: str = ENI, context: Any = None) -> Outcome:
    return load_policy(document).evaluate(action, arn, context or {}).outcome


# (case, policy, action, resource ARN, request context, expected)
CASES: list[tuple[str, dict[str, Any], str, str, dict[str, list[str]], Outcome]] = [
    # EVAL: no statement applies -> implicit deny; any Allow -> allow; a Deny wins over Allows.
    ("EVAL no match", policy(allow("ec2:DescribeSubnets")), "ec2:CreateTags", ENI, {}, NONE),
    ("EVAL allow", policy(allow("ec2:CreateTags")), "ec2:CreateTags", ENI, {}, ALLOW),
    (
        "EVAL deny wins",
        policy(allow(), deny("ec2:CreateTags"), allow("ec2:CreateTags")),
        "ec2:CreateTags",
        ENI,
        {},
        DENY,
    ),
    ("EVAL deny elsewhere", policy(allow(), deny("ec2:Delete*")), "ec2:CreateTags", ENI, {}, ALLOW),
    # ACTION: * and ? wildcards; the prefix and the name are case-insensitive.
    ("ACTION star", policy(allow("*")), "ec2:AttachNetworkInterface", ENI, {}, ALLOW),
    ("ACTION prefix star", policy(allow("ec2:*")), "ec2:AttachNetworkInterface", ENI, {}, ALLOW),
    (
        "ACTION inner star",
        policy(allow("ec2:*NetworkInterface")),
        "ec2:DetachNetworkInterface",
        ENI,
        {},
        ALLOW,
    ),
    (
        "ACTION question mark",
        policy(allow("ec2:?ttachNetworkInterface")),
        "ec2:AttachNetworkInterface",
        ENI,
        {},
        ALLOW,
    ),
    (
        "ACTION question is one char",
        policy(allow("ec2:?NetworkInterface")),
        "ec2:AttachNetworkInterface",
        ENI,
        {},
        NONE,
    ),
    ("ACTION case", policy(allow("EC2:createTAGS")), "ec2:CreateTags", ENI, {}, ALLOW),
    ("ACTION other service", policy(allow("iam:*")), "ec2:CreateTags", ENI, {}, NONE),
    (
        "ACTION list",
        policy(allow(["ec2:DescribeSubnets", "ec2:CreateTags"])),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    # RESOURCE: * is everything; wildcards within segments; case-sensitive.
    ("RESOURCE star", policy(allow(resource="*")), "ec2:CreateTags", ENI, {}, ALLOW),
    (
        "RESOURCE type",
        policy(allow(resource="arn:aws:ec2:*:*:network-interface/*")),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    (
        "RESOURCE other type",
        policy(allow(resource="arn:aws:ec2:*:*:network-interface/*")),
        "ec2:CreateTags",
        SUBNET,
        {},
        NONE,
    ),
    (
        "RESOURCE exact",
        policy(allow(resource=ENI)),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    (
        "RESOURCE case-sensitive",
        policy(allow(resource=ENI.replace("network-interface", "Network-Interface"))),
        "ec2:CreateTags",
        ENI,
        {},
        NONE,
    ),
    (
        "RESOURCE other region",
        policy(allow(resource="arn:aws:ec2:eu-west-1:*:network-interface/*")),
        "ec2:CreateTags",
        ENI,
        {},
        NONE,
    ),
    (
        "RESOURCE segment star ends segment",
        policy(allow(resource="arn:aws:ec2:us-*:123456789012:*")),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    (
        "RESOURCE inner star within a segment",
        policy(allow(resource="arn:aws:ec2:us-*-2:1234567?9012:network-interface/*")),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    (
        "RESOURCE list",
        policy(allow(resource=[SUBNET, "arn:aws:ec2:*:*:network-interface/*"])),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    (
        "RESOURCE ARN pattern never matches the * of a Describe",
        policy(allow(resource="arn:aws:ec2:*:*:*")),
        "ec2:DescribeSubnets",
        "*",
        {},
        NONE,
    ),
    # OPERATORS: StringEquals is exact and case-sensitive; StringLike takes * and ?.
    (
        "OPERATORS StringEquals",
        policy(allow(**cond("StringEquals", "aws:ResourceTag/cluster", "demo"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/cluster": ["demo"]},
        ALLOW,
    ),
    (
        "OPERATORS StringEquals value case",
        policy(allow(**cond("StringEquals", "aws:ResourceTag/cluster", "Demo"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/cluster": ["demo"]},
        NONE,
    ),
    (
        "OPERATORS StringLike",
        policy(
            allow(**cond("StringLike", "aws:RequestTag/node.k8s.amazonaws.com/instance_id", "i-*"))
        ),
        "ec2:CreateNetworkInterface",
        ENI,
        {"aws:RequestTag/node.k8s.amazonaws.com/instance_id": ["i-00000000000000001"]},
        ALLOW,
    ),
    (
        "OPERATORS StringLike question mark",
        policy(allow(**cond("StringLike", "aws:ResourceTag/n", "node-?"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/n": ["node-12"]},
        NONE,
    ),
    (
        "OPERATORS StringEquals takes * literally",
        policy(allow(**cond("StringEquals", "aws:ResourceTag/n", "*"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/n": ["x"]},
        NONE,
    ),
    (
        "OPERATORS StringNotEquals",
        policy(allow(**cond("StringNotEquals", "aws:ResourceTag/env", "production"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/env": ["qa"]},
        ALLOW,
    ),
    (
        "OPERATORS StringNotLike",
        policy(allow(**cond("StringNotLike", "aws:ResourceTag/env", "prod*"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/env": ["production"]},
        NONE,
    ),
    # OPERATORS: a missing key makes a plain operator false, a negated one true.
    (
        "OPERATORS missing key, StringEquals",
        policy(allow(**cond("StringEquals", "aws:ResourceTag/cluster", "demo"))),
        "ec2:CreateTags",
        ENI,
        {},
        NONE,
    ),
    (
        "OPERATORS missing key, StringLike *",
        policy(allow(**cond("StringLike", "aws:ResourceTag/cluster", "*"))),
        "ec2:CreateTags",
        ENI,
        {},
        NONE,
    ),
    (
        "OPERATORS missing key, StringNotEquals",
        policy(allow(**cond("StringNotEquals", "aws:ResourceTag/cluster", "demo"))),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    (
        "OPERATORS missing key, StringNotLike",
        policy(allow(**cond("StringNotLike", "aws:ResourceTag/cluster", "*"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/other": ["x"]},
        ALLOW,
    ),
    (
        "OPERATORS IfExists missing",
        policy(allow(**cond("StringEqualsIfExists", "aws:ResourceTag/cluster", "demo"))),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    (
        "OPERATORS IfExists present and different",
        policy(allow(**cond("StringEqualsIfExists", "aws:ResourceTag/cluster", "demo"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/cluster": ["other"]},
        NONE,
    ),
    # CONDITION: key names (the tag-key part too) are case-insensitive, values are not.
    (
        "CONDITION key name case",
        policy(allow(**cond("StringEquals", "AWS:resourcetag/CLUSTER", "demo"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/cluster": ["demo"]},
        ALLOW,
    ),
    (
        "CONDITION ec2:ResourceTag is aws:ResourceTag",
        policy(allow(**cond("StringEquals", "ec2:ResourceTag/cluster", "demo"))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/cluster": ["demo"]},
        ALLOW,
    ),
    (
        "CONDITION RequestedRegion",
        policy(allow(**cond("StringEquals", "aws:RequestedRegion", ["us-west-2", "us-east-1"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:RequestedRegion": ["us-west-2"]},
        ALLOW,
    ),
    # MULTI: operators AND, keys AND, values OR, negated values NOR.
    (
        "MULTI values OR",
        policy(allow(**cond("StringEquals", "aws:ResourceTag/c", ["a", "b"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/c": ["b"]},
        ALLOW,
    ),
    (
        "MULTI negated values NOR",
        policy(allow(**cond("StringNotEquals", "aws:ResourceTag/c", ["a", "b"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/c": ["b"]},
        NONE,
    ),
    (
        "MULTI keys AND (one fails)",
        policy(allow(StringEquals={"aws:ResourceTag/a": "1", "aws:ResourceTag/b": "2"})),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/a": ["1"], "aws:ResourceTag/b": ["3"]},
        NONE,
    ),
    (
        "MULTI keys AND (both hold)",
        policy(allow(StringEquals={"aws:ResourceTag/a": "1", "aws:ResourceTag/b": "2"})),
        "ec2:CreateTags",
        ENI,
        {"aws:ResourceTag/a": ["1"], "aws:ResourceTag/b": ["2"]},
        ALLOW,
    ),
    (
        "MULTI operators AND",
        policy(
            allow(
                StringEquals={"aws:RequestTag/a": "1"},
                StringLike={"aws:RequestTag/b": "x*"},
            )
        ),
        "ec2:CreateNetworkInterface",
        ENI,
        {"aws:RequestTag/a": ["1"], "aws:RequestTag/b": ["y"]},
        NONE,
    ),
    # SETS: ForAllValues / ForAnyValue over the request's set of values.
    (
        "SETS ForAllValues all in",
        policy(allow(**cond("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b", "c"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": ["a", "b"]},
        ALLOW,
    ),
    (
        "SETS ForAllValues one out",
        policy(allow(**cond("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": ["a", "z"]},
        NONE,
    ),
    (
        "SETS ForAllValues missing set is true",
        policy(allow(**cond("ForAllValues:StringEquals", "aws:TagKeys", ["a"]))),
        "ec2:CreateTags",
        ENI,
        {},
        ALLOW,
    ),
    (
        "SETS ForAllValues empty set is true",
        policy(allow(**cond("ForAllValues:StringEquals", "aws:TagKeys", ["a"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": []},
        ALLOW,
    ),
    (
        "SETS ForAnyValue one in",
        policy(
            allow(**cond("ForAnyValue:StringLike", "aws:TagKeys", "cluster.k8s.amazonaws.com/*"))
        ),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": ["Name", "cluster.k8s.amazonaws.com/name"]},
        ALLOW,
    ),
    (
        "SETS ForAnyValue none in",
        policy(allow(**cond("ForAnyValue:StringEquals", "aws:TagKeys", "a"))),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": ["b"]},
        NONE,
    ),
    (
        "SETS ForAnyValue missing set is false",
        policy(allow(**cond("ForAnyValue:StringEquals", "aws:TagKeys", "a"))),
        "ec2:CreateTags",
        ENI,
        {},
        NONE,
    ),
    (
        "SETS ForAllValues negated: no value may equal any listed",
        policy(allow(**cond("ForAllValues:StringNotEquals", "aws:TagKeys", ["a", "b"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": ["c", "b"]},
        NONE,
    ),
    (
        "SETS ForAnyValue negated: one value equals none listed",
        policy(allow(**cond("ForAnyValue:StringNotEquals", "aws:TagKeys", ["a", "b"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": ["c", "b"]},
        ALLOW,
    ),
    (
        "SETS tag keys compare case-sensitively under StringEquals",
        policy(allow(**cond("ForAllValues:StringEquals", "aws:TagKeys", ["name"]))),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": ["Name"]},
        NONE,
    ),
    (
        "SETS deny with ForAnyValue",
        policy(allow(), deny(**cond("ForAnyValue:StringLike", "aws:TagKeys", "kubernetes.io/*"))),
        "ec2:CreateTags",
        ENI,
        {"aws:TagKeys": ["a", "kubernetes.io/cluster/x"]},
        DENY,
    ),
    # EC2TAG: CreateTags allowed only as part of a create call.
    (
        "EC2TAG CreateAction present",
        policy(
            allow(
                "ec2:CreateTags",
                **cond("StringEquals", "ec2:CreateAction", "CreateNetworkInterface"),
            )
        ),
        "ec2:CreateTags",
        ENI,
        {"ec2:CreateAction": ["CreateNetworkInterface"]},
        ALLOW,
    ),
    (
        "EC2TAG CreateAction absent (a direct CreateTags call)",
        policy(
            allow(
                "ec2:CreateTags",
                **cond("StringEquals", "ec2:CreateAction", "CreateNetworkInterface"),
            )
        ),
        "ec2:CreateTags",
        ENI,
        {},
        NONE,
    ),
]


@pytest.mark.parametrize(
    ("document", "action", "arn", "context", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_documented_semantics(
    document: dict[str, Any],
    action: str,
    arn: str,
    context: dict[str, list[str]],
    expected: Outcome,
) -> None:
    assert decide(document, action, arn, context) is expected


def test_statement_as_one_object_and_old_version() -> None:
    # VERSION: 2008-10-17 is the older accepted version; Statement may be one object.
    document = {"Version": "2008-10-17", "Statement": allow("ec2:CreateTags")}
    assert decide(document, "ec2:CreateTags") is ALLOW


def test_decision_names_the_deciding_statement() -> None:
    loaded = load_policy(
        policy(
            {**allow("ec2:*"), "Sid": "Ec2"}, {**deny("ec2:DeleteNetworkInterface"), "Sid": "No"}
        )
    )
    assert loaded.evaluate("ec2:CreateTags", ENI, {}).statement == "Ec2"
    denied = loaded.evaluate("ec2:DeleteNetworkInterface", ENI, {})
    assert (denied.outcome, denied.statement, denied.allowed) == (DENY, "No", False)
    unnamed = load_policy(policy(allow("ec2:CreateTags")))
    assert unnamed.evaluate("ec2:CreateTags", ENI, {}).statement == "Statement[0]"


def test_json_text_is_accepted_and_the_document_kept() -> None:
    text = (
        '{"Version": "2012-10-17", '
        '"Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}'
    )
    loaded = load_policy(text)
    assert loaded.document["Version"] == "2012-10-17"
    assert loaded.evaluate("ec2:CreateTags", ENI, {}).allowed


def test_wildcard_helpers() -> None:
    assert matches("a*c", "abbbc")
    assert matches("a?c", "abc")
    assert not matches("a?c", "abbc")
    assert matches("A*", "abc", ignore_case=True)
    assert not matches("A*", "abc")
    # RESOURCE: a * that ends a segment may run past colons; one inside a segment may not.
    assert resource_matches("arn:aws:ec2:*", "arn:aws:ec2:us-west-2:1:instance/i-1")
    assert not resource_matches("arn:aws:ec2:u*2:instance/*", "arn:aws:ec2:us-west-2:1:instance/i")


# Refused at load, naming the element (each: what the emulator cannot evaluate faithfully).
REFUSALS: list[tuple[str, Any, str]] = [
    ("not an object", ["Statement"], "JSON object"),
    ("bad JSON text", "{", "not valid JSON"),
    ("Version missing", {"Statement": [allow()]}, "Version None"),
    ("Version unknown", {"Version": "2020-01-01", "Statement": [allow()]}, "Version '2020-01-01'"),
    ("Statement missing", {"Version": "2012-10-17"}, "Statement"),
    ("Statement empty", {"Version": "2012-10-17", "Statement": []}, "Statement"),
    ("unknown top element", {**policy(allow()), "Principal": "*"}, "unknown element 'Principal'"),
    ("NotAction", policy({"Effect": "Allow", "NotAction": "ec2:*", "Resource": "*"}), "NotAction"),
    (
        "NotResource",
        policy({"Effect": "Allow", "Action": "ec2:*", "NotResource": "*"}),
        "NotResource",
    ),
    ("Principal", policy({**allow(), "Principal": {"AWS": "*"}}), "Principal"),
    ("NotPrincipal", policy({**allow(), "NotPrincipal": {"AWS": "*"}}), "NotPrincipal"),
    ("unknown statement element", policy({**allow(), "Effects": "Allow"}), "'Effects'"),
    ("Effect other", policy({**allow(), "Effect": "allow"}), "Effect"),
    ("Effect missing", policy({"Action": "ec2:*", "Resource": "*"}), "Effect"),
    ("Action missing", policy({"Effect": "Allow", "Resource": "*"}), "Action is missing"),
    ("Action not service:name", policy(allow("CreateTags")), "'CreateTags' is not an action"),
    ("Action empty list", policy(allow([])), "Action must be"),
    ("Resource missing", policy({"Effect": "Allow", "Action": "ec2:*"}), "Resource is missing"),
    ("Resource not an ARN", policy(allow(resource="network-interface/*")), "is not an ARN"),
    ("Resource service wildcard", policy(allow(resource="arn:aws:ec*:*:*:*")), "service segment"),
    ("Sid not alphanumeric", policy({**allow(), "Sid": "a b"}), "Sid"),
    (
        "Sid twice",
        policy({**allow(), "Sid": "A"}, {**allow(), "Sid": "A"}),
        "Sid 'A' is used twice",
    ),
    (
        "variable in Resource",
        policy(allow(resource="arn:aws:ec2:*:*:instance/${aws:username}")),
        "policy variable",
    ),
    (
        "variable in a condition value",
        policy(allow(**cond("StringEquals", "aws:RequestTag/c", "${aws:PrincipalTag/c}"))),
        "policy variable",
    ),
    (
        "unknown operator",
        policy(allow(**cond("StringEqualsIgnoreCase", "aws:RequestTag/c", "x"))),
        "'StringEqualsIgnoreCase'",
    ),
    ("Null operator", policy(allow(**cond("Null", "aws:RequestTag/c", "false"))), "'Null'"),
    ("ArnLike operator", policy(allow(**cond("ArnLike", "aws:SourceArn", "x"))), "'ArnLike'"),
    (
        "unknown key",
        policy(allow(**cond("StringEquals", "aws:PrincipalTag/c", "x"))),
        "'aws:PrincipalTag/c'",
    ),
    ("ec2 key not supported", policy(allow(**cond("StringEquals", "ec2:Vpc", "x"))), "'ec2:Vpc'"),
    (
        "tag key empty",
        policy(allow(**cond("StringEquals", "aws:RequestTag/", "x"))),
        "needs a tag key",
    ),
    (
        "TagKeys without a set operator",
        policy(allow(**cond("StringEquals", "aws:TagKeys", "x"))),
        "multivalued",
    ),
    ("condition not an object", policy({**allow(), "Condition": ["x"]}), "Condition must be"),
    (
        "condition value an object",
        policy(allow(**cond("StringEquals", "aws:RequestTag/c", {"a": 1}))),
        "values are strings",
    ),
]


@pytest.mark.parametrize(
    ("document", "named"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_unsupported_grammar_is_refused_with_the_element_named(document: Any, named: str) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(document)
    assert named in str(refused.value)
    assert isinstance(refused.value, VpccniError)
    assert "\n" not in str(refused.value)
