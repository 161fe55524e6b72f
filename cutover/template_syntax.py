"""The syntax of a check field's templates, the one definition: `${VAR}`, `${VAR:-default}`,
`{{secret:ID}}` and `{{secret:ID#key}}`. Expansion (gates.templates), the sandbox's seeding, the IAM
policy and the runbook all read templates through these."""

from __future__ import annotations

import json
import re

from cutover.model import GraphqlCheck, HttpCheck, Plan, SecretsCheck

_VAR = r"\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?P<dflt>:-(?P<default>[^}]*))?\}"
_SECRET = r"\{\{\s*secret:(?P<sid>[^}#]+?)(?:#(?P<key>[^}]+?))?\s*\}\}"
ENV_REF = re.compile(_VAR)
SECRET_REF = re.compile(_SECRET)
TOKEN = re.compile(f"{_VAR}|{_SECRET}")  # one pass: an expanded value is never expanded again


def expand_vars(template: str, env) -> str:
    """${VAR} / ${VAR:-default} for display; an unset ${VAR} without a default stays as written."""
    return ENV_REF.sub(lambda m: env.get(m["var"]) or (m["default"] if m["default"] is not None else m[0]), template)


def secret_refs(plan: Plan) -> dict[str, set[str]]:
    """Every secret the plan reads -> the JSON keys read from it (empty set = a plain string secret)."""
    refs: dict[str, set[str]] = {}
    for c in plan.checks.values():
        if isinstance(c, SecretsCheck):
            for sid in c.secret_ids:
                refs.setdefault(sid, set())
        if isinstance(c, (HttpCheck, GraphqlCheck)):
            texts = [c.url, *c.headers.values()]
            if isinstance(c, GraphqlCheck):
                texts += [c.query, json.dumps(c.variables)]
            for text in texts:
                for m in SECRET_REF.finditer(str(text)):
                    keys = refs.setdefault(m["sid"].strip(), set())
                    if m["key"]:
                        keys.add(m["key"].strip())
    return refs
