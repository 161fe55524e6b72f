"""The use cases the CLI calls, in one place: `status`, `advance`, `rollback`, `history`, `unlock`.

Each lives in its own module (`commands/status.py`, `advance.py`, `rollback.py`, `history.py`; what advance
and rollback share, in `transition.py`); this module only names them for the CLI, `watch` and the tests.

Read, decide, apply, present: each command reads the flags, the state record and the lock once, decides
from that read (refusing before anything is written), and hands the decision to an executor. A dry run's
executor only says what would be written; it runs on a read-only AWS session, which refuses any write
as a second safeguard.
"""

from __future__ import annotations

from cutover.commands.advance import advance, advance_executor, decide_advance, gate_advance
from cutover.commands.history import history, unlock
from cutover.commands.rollback import decide_rollback, rollback
from cutover.commands.runtime import Runtime
from cutover.commands.status import FIRING, alarm_rows, firing_alarms, rollback_now_hint, status
from cutover.outcome import Outcome

__all__ = ["status", "advance", "decide_advance", "gate_advance", "advance_executor", "rollback", "decide_rollback",
           "history", "unlock", "Runtime", "Outcome", "FIRING", "alarm_rows", "firing_alarms", "rollback_now_hint"]
