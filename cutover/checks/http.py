"""http and graphql: a read-only request to an upstream answers as the plan expects (the gates are in
`cutover.checks.http_gate`, imported when one runs: loading a plan does not load urllib and ssl).

Their IAM needs and sandbox secrets are the plan's: a {{secret:ID}} in a url or header is read (and
granted, and seeded) once with the `secrets` checks' (`iam.inventory`, `cutover.checks.secret_refs`);
the sandbox reroutes their urls to its HTTP stub (`cutover.sandbox.emulator.plan_reroutes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from cutover.checks.interface import CheckType, Need, Problem, fragment, ref, text
from cutover.checks.words import code, names


@dataclass(frozen=True)
class HttpCheck:
    name: str
    url: str  # may hold ${VAR}, ${VAR:-default}
    method: str = "GET"  # GET or HEAD
    headers: dict[str, str] = field(default_factory=dict)  # may hold {{secret:ID}} / {{secret:ID#key}}
    expect_status: tuple[int, ...] = (200,)
    timeout: float = 10.0
    # Hosts a secret header may go to besides the one fixed in `url` (for a url whose host is a ${VAR}).
    allowed_hosts: tuple[str, ...] = ()
    type: str = "http"


@dataclass(frozen=True)
class GraphqlCheck:
    name: str
    url: str
    query: str
    variables: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    expect_status: tuple[int, ...] = (200,)
    timeout: float = 10.0
    allowed_hosts: tuple[str, ...] = ()
    type: str = "graphql"


def _headers(headers: dict) -> str:
    return f", with header {names(headers)}" if headers else ""


def _statuses(codes) -> str:
    return " or ".join(str(s) for s in codes)


class _Request(CheckType):
    def secret_refs(self, check: HttpCheck | GraphqlCheck) -> Iterator[tuple[str, str | None]]:
        from cutover.model.templates import SECRET_REF

        for template in self.templated(check):
            for m in SECRET_REF.finditer(str(template)):
                yield m["sid"].strip(), (m["key"].strip() if m["key"] else None)

    def templated(self, check: HttpCheck | GraphqlCheck) -> list[str]:
        """The fields that may hold ${VAR} and {{secret:...}}."""
        return [check.url, *check.headers.values()]

    def needs(self, check: HttpCheck | GraphqlCheck) -> Iterator[Need]:
        """Its url, the secrets its templates read, and the ${VAR}s of its url, headers (and query) with
        their defaults."""
        from cutover.model.templates import ENV_REF

        yield Need("url", check.url)
        yield from dict.fromkeys(Need("secret_read", sid) for sid, _ in self.secret_refs(check))
        for m in (m for t in self.shell_texts(check) for m in ENV_REF.finditer(t)):
            yield Need("env_ref", (m["var"], m["default"]))

    def shell_texts(self, check: HttpCheck | GraphqlCheck) -> list[str]:
        """The texts whose ${VAR}s the runbook asks the operator's shell for."""
        return [check.url, *check.headers.values()]

    def problems(self, check: HttpCheck | GraphqlCheck, fields: dict) -> Iterator[Problem]:
        """A check that sends a secret (a {{secret:...}} in its url or headers) must say where it may go: the
        url's host written out (not a ${VAR}), or `allowed_hosts`; and never over plain http to anything but
        this machine."""
        from cutover.model.templates import fixed_host, is_loopback, sends_secret

        if not sends_secret(check):
            return
        url_node, host = fields["url"][1], fixed_host(check.url)
        if host is None and not check.allowed_hosts:
            yield (url_node, ("url",), "the host comes from a ${VAR} and the check sends a secret: a changed variable "
                   "would send the secret to another host",
                   "write the host in the url, or list where it may go: allowed_hosts: [api.example.com]")
        elif check.url[:7].lower() == "http://" and not is_loopback(host or ""):
            yield (url_node, ("url",), "plain http would carry the check's secret in clear",
                   "use https:// (the sandbox and rehearsals reroute https urls to their local stub)")


class Http(_Request):
    kind = "http"
    model = HttpCheck
    schema = fragment(
        "http",
        "http check",
        {
            "url": ref("url"),
            "method": {
                "type": "string",
                "enum": ["GET", "HEAD"],
                "default": "GET",
                "description": "checks are read-only: use GET or HEAD",
            },
            "headers": ref("headers"),
            "expect_status": ref("expect_status"),
            "allowed_hosts": ref("allowed_hosts"),
        },
        ["url"],
        "10s",
    )

    def run(self, check: HttpCheck, ctx) -> str:
        from cutover.checks.http_gate import check_http

        return check_http(check, ctx)

    def describe(self, check: HttpCheck) -> str:
        return f"{check.method} {code(check.url)} answers {_statuses(check.expect_status)}{_headers(check.headers)}"


class Graphql(_Request):
    kind = "graphql"
    model = GraphqlCheck

    def templated(self, check: GraphqlCheck) -> list[str]:
        import json

        return [*super().templated(check), check.query, json.dumps(check.variables)]

    def shell_texts(self, check: GraphqlCheck) -> list[str]:
        return [*super().shell_texts(check), check.query]
    schema = fragment(
        "graphql",
        "graphql check",
        {
            "url": ref("url"),
            "query": text(
                format="graphql-query",
                minLength=1,
                description="a read-only query such as 'query { shop { name } }'",
            ),
            "variables": {"type": "object", "description": "the query's variables"},
            "headers": ref("headers"),
            "expect_status": ref("expect_status"),
            "allowed_hosts": ref("allowed_hosts"),
        },
        ["url", "query"],
        "10s",
    )

    def run(self, check: GraphqlCheck, ctx) -> str:
        from cutover.checks.http_gate import check_graphql

        return check_graphql(check, ctx)

    def describe(self, check: GraphqlCheck) -> str:
        return (f"GraphQL query to {code(check.url)} answers {_statuses(check.expect_status)} with no \"errors\""
                f"{_headers(check.headers)}")


HTTP, GRAPHQL = Http(), Graphql()
