"""EC2's Describe* filters and pagination, generic over resource kinds.

Owns :func:`select` and :func:`paginate`. A filter is ``{"Name": ..., "Values": [...]}``; a
resource passes when, for every filter, one of its values for that name matches one of the
filter's values (values OR, filters AND). Values may use EC2's wildcards: ``*`` any run of
characters, ``?`` one character, ``\\`` escapes. ``tag:KEY``, ``tag-key`` and ``tag-value`` work
on every kind. An unknown filter name is refused with InvalidParameterValue, as EC2 does.
Pages are ordered by id and the NextToken is the last id returned, so a page never repeats or
skips a resource that existed throughout.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from vpccni.emulator.errors import Ec2Error, invalid_parameter
from vpccni.emulator.records import Tags

T = TypeVar("T")
Fields = Callable[[T], Mapping[str, Iterable[str]]]


@lru_cache(maxsize=512)
def _pattern(value: str) -> re.Pattern[str]:
    parts = []
    escaped = False
    for char in value:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def matches(value: str, patterns: Sequence[str]) -> bool:
    return any(_pattern(pattern).fullmatch(value) for pattern in patterns)


def _values_for(name: str, fields: Mapping[str, Iterable[str]], tags: Tags) -> list[str] | None:
    if name.startswith("tag:"):
        key = name[4:]
        return [value for tag_key, value in tags if tag_key == key]
    if name == "tag-key":
        return [key for key, _ in tags]
    if name == "tag-value":
        return [value for _, value in tags]
    found = fields.get(name)
    return None if found is None else list(found)


def select(
    items: Iterable[T],
    filters: Sequence[Mapping[str, Any]],
    fields: Fields[T],
    tags: Callable[[T], Tags],
    known: Iterable[str],
) -> list[T]:
    """The items that pass every filter; refuses filter names outside ``known``."""
    known_names = set(known)
    for spec in filters:
        name = spec.get("Name", "")
        if not (name in known_names or name.startswith("tag:") or name in ("tag-key", "tag-value")):
            raise invalid_parameter(f"The filter '{name}' is invalid")
    chosen = []
    for item in items:
        item_fields = fields(item)
        item_tags = tags(item)
        for spec in filters:
            values = _values_for(spec["Name"], item_fields, item_tags) or []
            if not any(matches(value, list(spec.get("Values", []))) for value in values):
                break
        else:
            chosen.append(item)
    return chosen


def paginate(
    items: Sequence[T],
    key: Callable[[T], str],
    max_results: int | None,
    next_token: str | None,
    bounds: tuple[int, int] = (5, 1000),
) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``) and the token for the next, if any."""
    ordered = sorted(items, key=key)
    if next_token:
        after = _decode_token(next_token)
        ordered = [item for item in ordered if key(item) > after]
    if max_results is None:
        return ordered, None
    low, high = bounds
    if not low <= max_results <= high:
        raise invalid_parameter(
            f"Value ( {max_results} ) for parameter maxResults is invalid. "
            f"Expecting a value between {low} and {high}."
        )
    page = ordered[:max_results]
    if len(ordered) > max_results:
        return page, _encode_token(key(page[-1]))
    return page, None


def _encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(f"after:{last}".encode()).decode()


def _decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise Ec2Error("InvalidPaginationToken", f"Invalid pagination token: {token}") from error
    if not text.startswith("after:"):
        raise Ec2Error("InvalidPaginationToken", f"Invalid pagination token: {token}")
    return text[len("after:") :]
