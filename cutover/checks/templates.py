"""Template expansion for check fields: ${VAR}, ${VAR:-default}, {{secret:ID}} and {{secret:ID#key}}.

One pass with one regex, so an expanded value is never expanded again (a secret that happens to
contain "${X}" stays literal). Secret values are registered with the redactor before they are used.
"""

from __future__ import annotations

import json
import re

from cutover.model.templates import TOKEN

from cutover.checks.interface import Fail
from cutover.checks.secrets import fetch_secret

_TOKEN = TOKEN


class Templates:
    """Expands the fields of one check run. Remembers which secrets it used (for next actions)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.secret_ids: list[str] = []
        self._cache: dict[str, str] = {}

    def expand(self, text: str, where: str = "value", secrets: bool = True) -> str:
        """`text` with its templates filled in; with secrets=False the {{secret:...}} stay as written
        (nothing is read from Secrets Manager)."""
        return _TOKEN.sub(lambda m: self._one(m, where) if secrets or m.group("var") else m.group(0), text)

    def expand_map(self, mapping: dict[str, str], where: str = "headers") -> dict[str, str]:
        return {k: self.expand(str(v), f"{where}.{k}") for k, v in mapping.items()}

    def _one(self, m: re.Match, where: str) -> str:
        if m.group("var"):
            return self._env(m.group("var"), m.group("default") if m.group("dflt") else None, where)
        return self._secret(m.group("sid").strip(), (m.group("key") or "").strip() or None, where)

    def _env(self, name: str, default: str | None, where: str) -> str:
        value = self.ctx.env.get(name)
        if value:
            return value
        if default is not None:  # shell semantics: ":-" also covers set-but-empty
            return default
        state = "is empty" if value == "" else "is not set"
        raise Fail(
            f"{where}: environment variable {name} {state}",
            f"export {name}=<value> in the shell running cutover (or give it a default in the plan), then re-run",
        )

    def _secret(self, secret_id: str, key: str | None, where: str) -> str:
        if secret_id not in self._cache:
            self._cache[secret_id] = fetch_secret(self.ctx, secret_id)
            if secret_id not in self.secret_ids:
                self.secret_ids.append(secret_id)
        raw = self._cache[secret_id]
        if key is None:
            return raw
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise Fail(
                f"{where}: secret {secret_id} is not a JSON object, so #{key} cannot be read",
                f"store {secret_id} as JSON with key {key!r}, or drop #{key} from the template",
            )
        if key not in data or data[key] in (None, ""):
            raise Fail(
                f"{where}: secret {secret_id} has no value for key {key!r}",
                f"add key {key!r} to secret {secret_id}, or fix the key in the plan",
            )
        value = data[key]
        value = value if isinstance(value, str) else json.dumps(value)
        self.ctx.redactor.register(value)
        return value
