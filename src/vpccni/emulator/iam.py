"""IAM policy evaluation, pure: the subset of AWS's policy grammar the CNI's permissions need.

Owns :func:`load_policy` (a policy document -> :class:`Policy`, or :class:`PolicyError` naming
the element it cannot use), :meth:`Policy.evaluate` (one action on one resource ARN in a request
context -> :class:`Decision`) and :func:`matches` (IAM's ``*``/``?`` wildcard match). No I/O.

Supported, with AWS's documented semantics (IAM User Guide, "Policy evaluation logic",
"IAM JSON policy elements: Action / Resource / Condition / Condition operators", "Conditions with
multiple context keys or values", "Single-valued vs. multivalued context keys"):

* ``Version`` "2012-10-17" or "2008-10-17"; ``Id``; ``Statement`` as one object or a list;
  each statement ``Sid`` (unique), ``Effect`` Allow|Deny, ``Action``, ``Resource``, ``Condition``.
* ``Action``: ``service:Name`` or ``*`` with ``*``/``?`` wildcards, matched case-insensitively.
* ``Resource``: ``*`` or ARNs with ``*``/``?`` within segments (a ``*`` ending a segment may run
  past colons), matched case-sensitively; no wildcard in the service segment.
* ``Condition``: ``StringEquals``, ``StringNotEquals``, ``StringLike``, ``StringNotLike``, each
  with an optional ``IfExists`` suffix and ``ForAllValues:``/``ForAnyValue:`` prefix, on the keys
  ``aws:RequestTag/<key>``, ``aws:ResourceTag/<key>`` (``ec2:ResourceTag/<key>`` is its alias),
  ``aws:TagKeys`` (multivalued: a set prefix is required), ``ec2:CreateAction`` and
  ``aws:RequestedRegion``. Key names are case-insensitive, values case-sensitive.
* Explicit Deny wins, else any Allow, else implicit deny. Operators AND, keys of an operator
  AND, values of one key OR (NOR for a negated operator). A key missing from the request makes a
  plain operator false and a negated one true; ``...IfExists`` is true when the key is missing;
  ``ForAllValues`` is true for an empty or missing set, ``ForAnyValue`` false.

Anything else (``NotAction``, ``NotResource``, ``Principal``, ``NotPrincipal``, other operators or
keys, policy variables ``${...}``) is refused at load, never ignored.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from vpccni.emulator.errors import EmulatorSetupError

VERSIONS = ("2012-10-17", "2008-10-17")
TOP_FIELDS = ("Version", "Id", "Statement")
STATEMENT_FIELDS = ("Sid", "Effect", "Action", "Resource", "Condition")
UNSUPPORTED_FIELDS = ("NotAction", "NotResource", "Principal", "NotPrincipal")
BASE_OPERATORS = ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike")
SET_PREFIXES = ("ForAllValues:", "ForAnyValue:")
IF_EXISTS = "IfExists"
TAG_KEY_PREFIXES = {
    "aws:requesttag/": "aws:RequestTag/",
    "aws:resourcetag/": "aws:ResourceTag/",
    "ec2:resourcetag/": "aws:ResourceTag/",
}
PLAIN_KEYS = {
    "aws:tagkeys": "aws:TagKeys",
    "ec2:createaction": "ec2:CreateAction",
    "aws:requestedregion": "aws:RequestedRegion",
}
MULTIVALUED_KEYS = ("aws:TagKeys",)
ACTION_SHAPE = re.compile(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+")


class PolicyError(EmulatorSetupError):
    """A policy document the emulator cannot evaluate faithfully; the message names the element."""


class Outcome(enum.Enum):
    """How a request fared: allowed, denied by a Deny statement, or allowed by none."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Decision:
    """The outcome and the statement that decided it (its Sid, or ``Statement[i]``)."""

    outcome: Outcome
    statement: str | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW


@dataclass(frozen=True)
class Test:
    """One operator applied to one condition key, with the policy's values for it."""

    operator: str
    key: str
    values: tuple[str, ...]
    like: bool
    negated: bool
    set_op: str | None
    if_exists: bool

    def holds(self, context: Mapping[str, Sequence[str]]) -> bool:
        present = lookup(context, self.key)
        if present is None and self.if_exists:
            return True
        if self.set_op is None:
            if present is None:
                return self.negated
            passes = [self._value_passes(value) for value in present]
            return all(passes) if self.negated else any(passes)
        request = present or ()
        passes = [self._value_passes(value) for value in request]
        return all(passes) if self.set_op == "ForAllValues:" else any(passes)

    def _value_passes(self, value: str) -> bool:
        if self.like:
            hit = any(matches(pattern, value) for pattern in self.values)
        else:
            hit = value in self.values
        return not hit if self.negated else hit


@dataclass(frozen=True)
class Statement:
    sid: str
    """The statement's Sid, or ``Statement[i]`` when it has none."""
    allow: bool
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    tests: tuple[Test, ...]

    def applies(self, action: str, arn: str, context: Mapping[str, Sequence[str]]) -> bool:
        if not any(matches(pattern, action, ignore_case=True) for pattern in self.actions):
            return False
        if not any(resource_matches(pattern, arn) for pattern in self.resources):
            return False
        return all(test.holds(context) for test in self.tests)


@dataclass(frozen=True)
class Policy:
    """A loaded identity policy; ``document`` is what it was loaded from."""

    statements: tuple[Statement, ...]
    document: Mapping[str, object]

    def evaluate(
        self, action: str, resource_arn: str, context: Mapping[str, Sequence[str]]
    ) -> Decision:
        """``action`` (``ec2:CreateTags``) on ``resource_arn`` (or ``*``) in ``context``
        (condition key -> the request's values; a key absent or mapped to ``[]`` is missing)."""
        allowed_by: str | None = None
        for statement in self.statements:
            if statement.applies(action, resource_arn, context):
                if not statement.allow:
                    return Decision(Outcome.EXPLICIT_DENY, statement.sid)
                allowed_by = allowed_by or statement.sid
        if allowed_by is not None:
            return Decision(Outcome.ALLOW, allowed_by)
        return Decision(Outcome.IMPLICIT_DENY)


# -- matching ------------------------------------------------------------------------------------


def matches(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: ``*`` any run of characters, ``?`` exactly one."""
    return _compiled(pattern, ignore_case, False).fullmatch(text) is not None


def resource_matches(pattern: str, arn: str) -> bool:
    """A Resource pattern against an ARN: wildcards stay within a colon-separated segment,
    except a ``*`` that ends a segment, which may run past colons (IAM User Guide, Resource)."""
    return _compiled(pattern, False, True).fullmatch(arn) is not None


@lru_cache(maxsize=4096)
def _compiled(pattern: str, ignore_case: bool, segmented: bool) -> re.Pattern[str]:
    parts: list[str] = []
    for index, char in enumerate(pattern):
        if char == "*":
            ends_segment = index + 1 == len(pattern) or pattern[index + 1] == ":"
            parts.append("[^:]*" if segmented and not ends_segment else ".*")
        elif char == "?":
            parts.append("[^:]" if segmented else ".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def lookup(context: Mapping[str, Sequence[str]], key: str) -> Sequence[str] | None:
    """The request's values for ``key`` (names compared case-insensitively, the exact spelling
    first); None when the key is missing or has no values."""
    values = context.get(key)
    if values is None:
        wanted = normal_key(key)
        values = next((v for k, v in context.items() if normal_key(k) == wanted), None)
    if values is None or len(values) == 0:
        return None
    return list(values)


def normal_key(key: str) -> str:
    """A condition key folded for comparison (``ec2:ResourceTag/`` is ``aws:ResourceTag/``)."""
    folded = key.lower()
    for prefix, canonical in TAG_KEY_PREFIXES.items():
        if folded.startswith(prefix):
            return canonical.lower() + folded[len(prefix) :]
    return folded


# -- loading -------------------------------------------------------------------------------------


def as_policy(value: object) -> Policy | None:
    """None, a loaded Policy, or a document to load (see :func:`load_policy`)."""
    if value is None or isinstance(value, Policy):
        return value
    return load_policy(value)


def load_policy(document: object) -> Policy:
    """A policy from its document (a decoded JSON object, or JSON text); PolicyError naming the
    element when it is malformed or uses grammar the emulator does not evaluate."""
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            raise PolicyError(
                f"IAM policy is not valid JSON (line {error.lineno}: {error.msg})"
            ) from None
    if not isinstance(document, Mapping):
        raise PolicyError("IAM policy must be a JSON object with Version and Statement")
    _known(document, "policy", TOP_FIELDS, ())
    version = document.get("Version")
    if version not in VERSIONS:
        raise PolicyError(
            f'IAM policy Version {version!r} is not supported: give "Version": "2012-10-17"'
        )
    if "Id" in document and not isinstance(document["Id"], str):
        raise PolicyError("IAM policy Id must be a string")
    raw = document.get("Statement")
    listed = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(listed, list) or not listed:
        raise PolicyError("IAM policy Statement must be a statement object or a non-empty list")
    statements = tuple(_statement(item, index) for index, item in enumerate(listed))
    sids = [item["Sid"] for item in listed if isinstance(item, Mapping) and "Sid" in item]
    duplicate = next((sid for sid in sids if sids.count(sid) > 1), None)
    if duplicate is not None:
        raise PolicyError(f"IAM policy Sid {duplicate!r} is used twice; Sids must be unique")
    return Policy(statements, dict(document))


def _known(
    value: Mapping[str, object], where: str, known: tuple[str, ...], refused: tuple[str, ...]
) -> None:
    for name in value:
        if name in refused:
            raise PolicyError(
                f"{where}: {name} is not supported by the emulator's IAM evaluation "
                f"(supported: {', '.join(known)})"
            )
        if name not in known:
            raise PolicyError(f"{where}: unknown element {name!r} (supported: {', '.join(known)})")


def _statement(raw: object, index: int) -> Statement:
    where = f"Statement[{index}]"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where} must be a JSON object")
    sid = raw.get("Sid", "")
    if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9]*", sid):
        raise PolicyError(f"{where}: Sid must be ASCII letters and digits only, not {sid!r}")
    where = f"{where} ({sid})" if sid else where
    sid = sid or f"Statement[{index}]"
    _known(raw, where, STATEMENT_FIELDS, UNSUPPORTED_FIELDS)
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f'{where}: Effect must be "Allow" or "Deny", not {effect!r}')
    actions = _strings(raw.get("Action"), f"{where}.Action")
    for action in actions:
        if action != "*" and not ACTION_SHAPE.fullmatch(action):
            raise PolicyError(
                f"{where}.Action {action!r} is not an action: write service:Name, e.g. "
                "ec2:CreateTags (wildcards * and ? allowed in the name)"
            )
    resources = _strings(raw.get("Resource"), f"{where}.Resource")
    for resource in resources:
        _check_resource(resource, f"{where}.Resource")
    condition = raw.get("Condition", {})
    tests = _conditions(condition, f"{where}.Condition")
    return Statement(sid, effect == "Allow", actions, resources, tests)


def _strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        raise PolicyError(f"{where} is missing")
    listed = [value] if isinstance(value, str) else value
    if not isinstance(listed, list) or not listed:
        raise PolicyError(f"{where} must be a string or a non-empty list of strings")
    for item in listed:
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{where} must hold non-empty strings, not {item!r}")
        _no_variables(item, where)
    return tuple(listed)


def _no_variables(text: str, where: str) -> None:
    if "${" in text:
        raise PolicyError(
            f"{where} {text!r} uses a policy variable (${{...}}), which the emulator does not "
            "support: write the value out"
        )


def _check_resource(resource: str, where: str) -> None:
    if resource == "*":
        return
    parts = resource.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        raise PolicyError(
            f"{where} {resource!r} is not an ARN: write * or "
            "arn:aws:ec2:REGION:ACCOUNT:TYPE/ID (wildcards allowed)"
        )
    if "*" in parts[2] or "?" in parts[2]:
        raise PolicyError(f"{where} {resource!r}: IAM allows no wildcard in the service segment")


def _conditions(raw: object, where: str) -> tuple[Test, ...]:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where} must be a JSON object of operators")
    tests: list[Test] = []
    for operator, block in raw.items():
        set_op = next((p for p in SET_PREFIXES if operator.startswith(p)), None)
        base = operator[len(set_op) :] if set_op else operator
        if_exists = base.endswith(IF_EXISTS)
        base = base.removesuffix(IF_EXISTS)
        if base not in BASE_OPERATORS:
            raise PolicyError(
                f"{where}: operator {operator!r} is not supported (supported: "
                f"{', '.join(BASE_OPERATORS)}, with IfExists and ForAllValues:/ForAnyValue:)"
            )
        if not isinstance(block, Mapping) or not block:
            raise PolicyError(f"{where}.{operator} must map condition keys to values")
        for key, values in block.items():
            canonical = _condition_key(key, f"{where}.{operator}")
            if canonical in MULTIVALUED_KEYS and set_op is None:
                raise PolicyError(
                    f"{where}.{operator}: {key} is multivalued; write ForAllValues:{operator} "
                    f"or ForAnyValue:{operator}"
                )
            tests.append(
                Test(
                    operator,
                    canonical,
                    _condition_values(values, f"{where}.{operator}.{key}"),
                    like="Like" in base,
                    negated="Not" in base,
                    set_op=set_op,
                    if_exists=if_exists,
                )
            )
    return tuple(tests)


def _condition_key(key: str, where: str) -> str:
    _no_variables(key, where)
    folded = key.lower()
    for prefix, canonical in TAG_KEY_PREFIXES.items():
        if folded.startswith(prefix):
            if len(key) == len(prefix):
                raise PolicyError(f"{where}: {key!r} needs a tag key after the slash")
            return canonical + key[len(prefix) :]
    if folded in PLAIN_KEYS:
        return PLAIN_KEYS[folded]
    known = (
        "aws:RequestTag/KEY",
        "aws:ResourceTag/KEY",
        "ec2:ResourceTag/KEY",
        *PLAIN_KEYS.values(),
    )
    raise PolicyError(
        f"{where}: condition key {key!r} is not supported (supported: {', '.join(known)})"
    )


def _condition_values(raw: object, where: str) -> tuple[str, ...]:
    listed = raw if isinstance(raw, list) else [raw]
    if not listed:
        raise PolicyError(f"{where} must give at least one value")
    values = []
    for item in listed:
        if isinstance(item, bool):
            values.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            values.append(str(item))
        else:
            raise PolicyError(f"{where}: condition values are strings, not {item!r}")
        _no_variables(values[-1], where)
    return tuple(values)
