"""AWS's size limits on what cutover generates, checked before anything is created.

The emulator accepts documents and policies of any size; AWS refuses them (and a guard half-armed or a
policy that cannot be attached is found out at the worst moment). Pure: sizes are computed from the
documents as cutover would send them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class Limit:
    what: str
    size: int
    unit: str  # how AWS counts


# IAM counts a policy's characters without whitespace.
MANAGED_POLICY = Limit("an IAM managed policy", 6_144, "characters, whitespace not counted")
ROLE_INLINE_POLICIES = Limit("a role's inline policies together", 10_240, "characters, whitespace not counted")
AUTOMATION_DOCUMENT = Limit("an SSM Automation document", 64 * 1024, "bytes")

SIZING_ACCOUNT = "123456789012"  # an account id has 12 digits: size with one when the real one is not known


def policy_size(doc: dict, placeholder: str | None = None) -> int:
    """As IAM counts it; a `placeholder` account id in the ARNs is counted as the 12 digits it stands for."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if placeholder:
        text = text.replace(placeholder, SIZING_ACCOUNT)
    return sum(not c.isspace() for c in text)


def document_content(doc: dict) -> str:
    """The document as `guard arm` sends it. YAML, not JSON: AWS has documented inline `Script` (the
    Lambda steps) for YAML runbooks only."""
    # Flow style for the innermost lists and mappings (one flag's entry on one line): a third smaller.
    return yaml.safe_dump(doc, sort_keys=False, width=1000, default_flow_style=None)


def document_size(doc: dict) -> int:
    return len(document_content(doc).encode("utf-8"))


def over(limit: Limit, size: int) -> str | None:
    """None when `size` fits, else the sentence saying by how much."""
    if size <= limit.size:
        return None
    return f"{size:,} {limit.unit.split(',')[0]}, over the {limit.size:,} AWS allows for {limit.what} ({limit.unit})"


ENV_LIMIT = 4096  # bytes: Lambda refuses an environment whose variables, as JSON, exceed 4 KB


def env_size(variables: dict[str, str]) -> int:
    """The size Lambda holds against its 4 KB limit: the variables map as compact JSON."""
    return len(json.dumps(variables, separators=(",", ":"), ensure_ascii=False).encode())


MANAGED_POLICIES_PER_ROLE = 10  # IAM's default quota of managed policies attached to one role


def split_policy(doc: dict, limit: Limit = MANAGED_POLICY, placeholder: str | None = None) -> list[dict]:
    """`doc` as the fewest documents of at most `limit` each, statements in order. A statement that does
    not fit the current document starts the next one; one too large for any document fills the current
    one and goes on in the next (its Sid numbered). A list of one when `doc` fits. ValueError when a
    statement with a single resource cannot fit (no split helps)."""
    docs: list[list[dict]] = [[]]

    def fits(stmts: list[dict]) -> bool:
        return policy_size({"Version": doc["Version"], "Statement": stmts}, placeholder) <= limit.size

    for stmt in doc["Statement"]:
        rest, part = stmt, 1
        while rest is not None:
            current = docs[-1]
            if fits([*current, rest]):
                current.append(rest)
                break
            if current and fits([rest]):
                docs.append([])
                continue
            resources = rest["Resource"] if isinstance(rest["Resource"], list) else [rest["Resource"]]
            k = _most_that_fit(len(resources) - 1, lambda k: fits([*current, {**rest, "Resource": resources[:k]}]))
            if k == 0 and not current:
                raise ValueError(f"statement {stmt.get('Sid', '?')} does not fit {limit.what} even with one resource")
            if k:
                current.append({**rest, "Resource": resources[:k]})
                part += 1
                rest = {**rest, "Resource": resources[k:]}
                if "Sid" in stmt:
                    rest["Sid"] = f"{stmt['Sid']}{part}"
            docs.append([])
    return [{"Version": doc["Version"], "Statement": stmts} for stmts in docs if stmts]


def _most_that_fit(most: int, fits) -> int:
    """The largest k in 0..most with fits(k) (fits is monotone: fewer resources, smaller policy)."""
    low, high = 0, most
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low
