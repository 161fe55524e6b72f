"""Notifications: a short, PII-safe message to the plan's SNS topic on every state change, rollback
and automatic rollback. A failed notification is logged and never blocks anything."""

from __future__ import annotations

from cutover.errors import CutoverError
from cutover.redact import REDACTOR


def notify(rt, subject: str, lines: list[str]) -> bool:
    """Publish if the plan has a topic (never in a dry run: Publish is a write). True when sent."""
    topic = rt.plan.notify_topic
    if not topic or rt.dry_run or rt.aws.notifier is None:
        return False
    body = REDACTOR.text("\n".join([*lines, f"plan: {rt.plan.name} (sha256 {rt.plan.digest[:12]}), run {rt.run_id}"]))
    try:
        rt.aws.notifier.publish(topic, REDACTOR.text(f"cutover {rt.plan.name}: {subject}"), body)
        return True
    except CutoverError as err:
        if rt.log is not None:
            rt.log.warning("notification_failed", topic=topic, error=err.message)
        rt.notes.append(f"notification to {topic} failed: {err.message}")
        return False
