"""What a rollback tells a person while it writes: counts, and the kill switch written before the rest is read."""

from types import SimpleNamespace

from cutover.progress import FlagProgress


def change(name: str):
    return SimpleNamespace(name=name, flag=SimpleNamespace(where=f"/p/{name}"))


def test_counts_every_flag_planned_and_confirmed():
    lines: list[str] = []
    p = FlagProgress(lines.append)
    p.begin("rollback canary -> rolled_back", [change("a"), change("b")])
    assert lines == ["rollback canary -> rolled_back: 2 flag(s) to write"]
    p.flag("written", change("a"))
    p.flag("confirmed", change("a"))
    assert lines[-1].endswith("a (/p/a) confirmed; 1 of 2 done; left: b"), lines
    assert p.so_far == "1 of 2 restored" and p.not_confirmed == ["b"]


def test_the_kill_switch_first_then_the_rest_once_read():
    lines: list[str] = []
    p = FlagProgress(lines.append)
    p.begin("rollback canary -> rolled_back", [change("kill")], rest_unread=True)
    assert lines == ["rollback canary -> rolled_back: the kill switch first, the other flags once it is written"]
    assert p.so_far == "0 restored (the kill switch is written first; the other flags are not read yet)"
    p.flag("confirmed", change("kill"))
    assert lines[-1].endswith("kill (/p/kill) confirmed; 1 done; the other flags are read next"), lines
    p.more([change("b"), change("c")])
    assert lines[-1] == "rollback canary -> rolled_back: 2 more flag(s) to write"
    assert not p.rest_unread and p.so_far == "1 of 3 restored" and p.not_confirmed == ["b", "c"]
    p.flag("confirmed", change("b"))
    assert lines[-1].endswith("b (/p/b) confirmed; 2 of 3 done; left: c"), lines


def test_a_flag_written_again_is_counted_once():
    p = FlagProgress()
    p.begin("rollback", [change("a")])
    p.flag("confirmed", change("a"))
    p.flag("confirmed", change("a"))
    p.flag("confirmed", change("z"))  # written again after someone else changed it: added to the plan
    assert p.confirmed == ["a", "z"] and p.so_far == "2 of 2 restored"


def test_without_a_terminal_nothing_is_printed_but_the_count_is_kept():
    p = FlagProgress(None)
    p.begin("rollback", [change("a")], rest_unread=True)
    p.more([change("b")])
    p.flag("confirmed", change("b"))
    assert p.so_far == "1 of 2 restored"
