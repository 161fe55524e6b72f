"""The guard's AWS resources: its IAM roles, the Automation document, the EventBridge rules."""

from __future__ import annotations

from typing import Any, Iterable

import botocore.exceptions as bex

from cutover.errors import AwsError
from cutover.adapters.aws.errors import ClientFactory, sanitize, aws_errors, error_code
from cutover.adapters.aws.session import Clients, SessionHook, make_session


class GuardResources:
    """The guard's AWS resources (`cutover guard`): an SSM Automation document, an EventBridge rule and
    its targets; the IAM roles (one inline policy each) are only read, an admin creates them from
    `cutover guard bootstrap`. Reads return None for a missing resource;
    every other failure is the project's own error. Policy and pattern documents go in and come out as
    dicts, contents as JSON text."""

    MISSING_ROLE = {"NoSuchEntity"}
    MISSING_DOCUMENT = {"InvalidDocument"}
    MISSING_RULE = {"ResourceNotFoundException"}

    def __init__(self, clients: ClientFactory) -> None:
        self._clients = clients

    @classmethod
    def connect(
        cls, region: str | None, profile: str | None, read_only: bool, *, hooks: Iterable[SessionHook] = (),
        credentials=None,
    ) -> "GuardResources":
        """On its own session, with the read-only guard when `read_only` (dry runs and `guard status`);
        `credentials`: a target's assumed role (`assume_role`), in place of the profile's."""
        return cls(Clients(make_session(region, profile, read_only, hooks=hooks, credentials=credentials)))

    def _call(self, service: str, method: str, action: str, resource: str, missing: Iterable[str] = (), **kw):
        """One API call; None when the error code says the resource does not exist."""
        with aws_errors(action, resource):
            try:
                return getattr(self._clients(service), method)(**kw)
            except bex.ClientError as exc:
                if error_code(exc) in missing:
                    return None
                raise

    @staticmethod
    def _policy(doc: Any) -> dict:
        """IAM policy documents: botocore decodes them to dicts; be lenient with URL-encoded JSON text."""
        if isinstance(doc, str):
            import json
            from urllib.parse import unquote

            return json.loads(unquote(doc))
        return doc or {}

    @staticmethod
    def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    # --- IAM roles -------------------------------------------------------------------------------------
    def get_role(self, name: str, managed: Iterable[str] = ()) -> dict | None:
        """{"arn", "trust", "policies": {inline policy name: document}, "managed": {attached policy name:
        document, read for the names in `managed` only (what the operator may read), else None}} or None."""
        resp = self._call("iam", "get_role", "iam:GetRole", f"role {name}", self.MISSING_ROLE, RoleName=name)
        if resp is None:
            return None
        role = resp["Role"]
        names: list[str] = []
        with aws_errors("iam:ListRolePolicies", f"role {name}"):
            for page in self._clients("iam").get_paginator("list_role_policies").paginate(RoleName=name):
                names += page.get("PolicyNames", [])
        policies = {}
        for pname in names:
            got = self._call("iam", "get_role_policy", "iam:GetRolePolicy", f"role {name}", self.MISSING_ROLE,
                             RoleName=name, PolicyName=pname)
            if got is not None:
                policies[pname] = self._policy(got.get("PolicyDocument"))
        return {"arn": role["Arn"], "trust": self._policy(role.get("AssumeRolePolicyDocument")), "policies": policies,
                "managed": self._attached_policies(name, set(managed))}

    def _attached_policies(self, role: str, readable: set[str]) -> dict[str, dict | None]:
        """{managed policy name: its default version's document, or None if not `readable`} of the
        policies attached to `role`."""
        iam, attached = self._clients("iam"), []
        with aws_errors("iam:ListAttachedRolePolicies", f"role {role}"):
            for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role):
                attached += page.get("AttachedPolicies", [])
        out = {}
        for p in attached:
            if p["PolicyName"] not in readable:
                out[p["PolicyName"]] = None
                continue
            with aws_errors("iam:GetPolicy", f"policy {p['PolicyArn']}"):
                version = iam.get_policy(PolicyArn=p["PolicyArn"])["Policy"]["DefaultVersionId"]
            with aws_errors("iam:GetPolicyVersion", f"policy {p['PolicyArn']}"):
                got = iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId=version)["PolicyVersion"]
            out[p["PolicyName"]] = self._policy(got.get("Document"))
        return out

    # --- SSM Automation document -------------------------------------------------------------------
    def get_document(self, name: str, version: str | None = None) -> dict | None:
        """The default version's (or `version`'s) content and the document's versions and tags, or None."""
        desc = self._call("ssm", "describe_document", "ssm:DescribeDocument", f"document {name}",
                          self.MISSING_DOCUMENT, Name=name)
        if desc is None:
            return None
        kw = {"DocumentVersion": version} if version else {}
        got = self._call("ssm", "get_document", "ssm:GetDocument", f"document {name}", self.MISSING_DOCUMENT,
                         Name=name, DocumentFormat="JSON", **kw)
        if got is None:
            return None
        d = desc["Document"]
        tags = {t["Key"]: t["Value"] for t in d.get("Tags", [])}
        return {"content": got.get("Content", ""), "version": str(got.get("DocumentVersion", "")),
                "default_version": str(d.get("DefaultVersion", "")), "latest_version": str(d.get("LatestVersion", "")),
                "type": d.get("DocumentType", ""), "description": d.get("Description", ""), "tags": tags}

    def create_document(self, name: str, content: str, tags: dict[str, str]) -> str:
        """`content` is YAML (SSM converts it: `get_document` reads it back as JSON)."""
        resp = self._call("ssm", "create_document", "ssm:CreateDocument", f"document {name}", Name=name,
                          Content=content, DocumentType="Automation", DocumentFormat="YAML", Tags=self._tags(tags))
        return str(resp["DocumentDescription"].get("DocumentVersion", "1"))

    def update_document(self, name: str, content: str, tags: dict[str, str]) -> str:
        """A new version with `content`, made the default (what `$DEFAULT` targets run). When an older
        version already holds exactly this content (SSM refuses a duplicate), that one becomes the default."""
        resp = self._call("ssm", "update_document", "ssm:UpdateDocument", f"document {name}",
                          {"DuplicateDocumentContent"}, Name=name, Content=content, DocumentVersion="$LATEST",
                          DocumentFormat="YAML")
        version = str(resp["DocumentDescription"]["DocumentVersion"]) if resp else self._version_holding(name, content)
        self._call("ssm", "update_document_default_version", "ssm:UpdateDocumentDefaultVersion",
                   f"document {name}", Name=name, DocumentVersion=version)
        self._call("ssm", "add_tags_to_resource", "ssm:AddTagsToResource", f"document {name}",
                   ResourceType="Document", ResourceId=name, Tags=self._tags(tags))
        return version

    def _version_holding(self, name: str, content: str) -> str:
        import json

        import yaml

        desc = self.get_document(name)
        latest = int(desc["latest_version"]) if desc and desc["latest_version"].isdigit() else 0
        for v in range(latest, 0, -1):
            got = self.get_document(name, str(v))  # read back as JSON; written as YAML
            if got is not None and json.loads(got["content"]) == yaml.safe_load(content):
                return str(v)
        raise AwsError(f"SSM says a version of document {name} holds this content, but none was found",
                       "re-run `cutover guard arm`", code="DuplicateDocumentContent", operation="ssm:UpdateDocument")

    def delete_document(self, name: str) -> bool:
        return self._call("ssm", "delete_document", "ssm:DeleteDocument", f"document {name}",
                          self.MISSING_DOCUMENT, Name=name) is not None

    # --- EventBridge rule and targets ----------------------------------------------------------------
    def get_rule(self, name: str) -> dict | None:
        """{"arn", "pattern" (dict), "state", "description"} or None."""
        import json

        resp = self._call("events", "describe_rule", "events:DescribeRule", f"rule {name}", self.MISSING_RULE, Name=name)
        if resp is None:
            return None
        pattern = resp.get("EventPattern")
        return {"arn": resp.get("Arn", ""), "pattern": json.loads(pattern) if pattern else None,
                "state": resp.get("State", ""), "description": resp.get("Description", "")}

    def list_targets(self, rule: str) -> list[dict]:
        """Every target of the rule (botocore's paginator follows NextToken); [] when there is no rule."""
        with aws_errors("events:ListTargetsByRule", f"rule {rule}"):
            try:
                pages = self._clients("events").get_paginator("list_targets_by_rule").paginate(Rule=rule)
                return [t for page in pages for t in page.get("Targets", [])]
            except bex.ClientError as exc:
                if error_code(exc) in self.MISSING_RULE:
                    return []
                raise

    def put_rule(self, name: str, pattern: dict, description: str, tags: dict[str, str]) -> str:
        import json

        resp = self._call("events", "put_rule", "events:PutRule", f"rule {name}", Name=name,
                          EventPattern=json.dumps(pattern), State="ENABLED", Description=description[:512],
                          Tags=self._tags(tags))
        return resp.get("RuleArn", "")

    def put_targets(self, rule: str, targets: list[dict]) -> None:
        resp = self._call("events", "put_targets", "events:PutTargets", f"rule {rule}", Rule=rule, Targets=targets)
        self._entries_ok(resp, "events:PutTargets", rule)

    def remove_targets(self, rule: str, ids: list[str]) -> None:
        if not ids:
            return
        resp = self._call("events", "remove_targets", "events:RemoveTargets", f"rule {rule}", self.MISSING_RULE,
                          Rule=rule, Ids=ids)
        self._entries_ok(resp, "events:RemoveTargets", rule)

    def delete_rule(self, name: str) -> bool:
        return self._call("events", "delete_rule", "events:DeleteRule", f"rule {name}", self.MISSING_RULE,
                          Name=name) is not None

    @staticmethod
    def _entries_ok(resp: dict | None, action: str, rule: str) -> None:
        failed = (resp or {}).get("FailedEntries") or []
        if (resp or {}).get("FailedEntryCount") or failed:
            first = failed[0] if failed else {}
            raise AwsError(f"AWS rejected {action} on rule {rule}: {first.get('ErrorCode', 'failed entry')}",
                           sanitize(first.get("ErrorMessage", "")), code=first.get("ErrorCode", ""), operation=action)
