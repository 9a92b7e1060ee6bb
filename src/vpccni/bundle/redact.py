"""Pod names out of a support bundle: each known name becomes a pseudonym that is the same in
every section of one bundle (so a pod can still be followed from the checkpoint to the logs) and
cannot be matched across bundles (a random key per bundle).

Names come from the daemon's ``/v1/pods`` and the checkpoint; JSON is redacted by field
(``name``, ``k8sPodName``), text by whole-word replacement of every known name (a word: not inside a
longer name; a final ``.`` ends a sentence, not the name). Secrets are a
separate concern: the caller passes the daemon's log redaction as ``secrets``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as random_source
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

POD_NAME_KEYS = ("name", "k8sPodName")
_EDGE = r"[A-Za-z0-9_.-]"


@dataclass
class Redactor:
    """Pseudonyms for pod names (``keep_names``: none) and the secrets filter for all text."""

    secrets: Callable[[str], str]
    keep_names: bool = False
    _key: bytes = field(default_factory=lambda: random_source.token_bytes(16))
    _names: set[str] = field(default_factory=set)
    _pattern: re.Pattern[str] | None = None

    def learn(self, names: Iterable[str]) -> None:
        """Pod names to hide from now on."""
        fresh = {name for name in names if name and name not in self._names}
        if fresh:
            self._names |= fresh
            self._pattern = None

    def pseudonym(self, name: str) -> str:
        digest = hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()[:10]
        return f"pod-{digest}"

    def text(self, text: str) -> str:
        """Secrets out, then (unless kept) every known pod name out."""
        text = self.secrets(text)
        if self.keep_names or not self._names:
            return text
        if self._pattern is None:
            words = "|".join(re.escape(n) for n in sorted(self._names, key=len, reverse=True))
            self._pattern = re.compile(f"(?<!{_EDGE})(?:{words})(?![A-Za-z0-9_-]|\\.[A-Za-z0-9])")
        return self._pattern.sub(lambda found: self.pseudonym(found.group(0)), text)

    def document(self, value: Any) -> Any:
        """A JSON value with pod-name fields replaced (then as text, for names elsewhere)."""
        if self.keep_names:
            return value
        if isinstance(value, dict):
            return {
                key: (
                    self.pseudonym(item)
                    if key in POD_NAME_KEYS and isinstance(item, str) and item in self._names
                    else self.document(item)
                )
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.document(item) for item in value]
        return value
