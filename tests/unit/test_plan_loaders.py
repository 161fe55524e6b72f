"""The plan's two YAML readers agree: libyaml's parser (C) under pyyaml's composer, the fast path of
`cutover validate`, and pure pyyaml. Every text gives the same Plan, or the same PlanError (file, line,
column, message, hint), and the same nodes (tags, values, styles, marks) wherever libyaml read it.

Inputs: the repository's plans, odd hand-written texts, and hypothesis' random edits of real plans and
generated YAML documents.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cutover.errors import PlanError
from cutover.plan import load
from cutover.plan.load import MAX_DEPTH, MAX_NODES, parse_plan
from cutover.plan.schema import Violation

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="pyyaml is built without libyaml")

ROOT = Path(__file__).resolve().parents[2]
PLAN_FILES = [ROOT / "phases.yaml", *sorted((ROOT / "tests" / "plans").glob("*.yaml"))]
PLAN_TEXTS = [p.read_text(encoding="utf-8") for p in PLAN_FILES]
MINIMAL = (ROOT / "tests" / "plans" / "minimal.yaml").read_text(encoding="utf-8")

FAST, PURE = "libyaml", "pyyaml"


def outcome(text: str | bytes):
    """The Plan, or the PlanError as its parts."""
    try:
        return parse_plan(text, "plan.yaml")
    except PlanError as e:
        return ("PlanError", e.path, e.line, e.col, e.detail, e.hint)


def pure_python(read, *args):
    """`read(*args)` with pyyaml alone, as on a pyyaml built without libyaml."""
    with mock.patch.object(load, "_LibyamlLoader", None):
        return read(*args)


def tree(node: Node | None):
    """A node as comparable values: kind, tag, a scalar's style, marks (line, column, index), value or
    children. Not `flow_style`, which nothing reads: libyaml's False is pyyaml's None for a sequence not
    indented under its key."""
    if node is None:
        return None
    marks = tuple((m.line, m.column, m.index) for m in (node.start_mark, node.end_mark))
    head = (type(node).__name__, node.tag, node.style if isinstance(node, ScalarNode) else None, marks)
    if isinstance(node, MappingNode):
        return head + (tuple((tree(k), tree(v)) for k, v in node.value),)
    if isinstance(node, SequenceNode):
        return head + (tuple(tree(item) for item in node.value),)
    return head + (node.value,)


def document(text: str):
    """`load._document`'s nodes (or refusal) and the parser that read them."""
    try:
        root, parser = load._document(text)
        return tree(root), parser
    except Violation as v:
        return ("Violation", v.mark.line, v.mark.column, v.message, v.hint), PURE


def assert_alike(text: str) -> str:
    """Both readers give the same outcome and nodes; returns the parser that read the text."""
    fast_nodes, parser = document(text)
    pure_nodes, pure_parser = pure_python(document, text)
    assert pure_parser == PURE
    assert fast_nodes == pure_nodes
    assert outcome(text) == pure_python(outcome, text)
    return parser


# --- the repository's plans --------------------------------------------------------------------------


@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.name)
def test_every_repository_plan_reads_alike(path: Path) -> None:
    assert_alike(path.read_text(encoding="utf-8"))
    assert outcome(path.read_bytes()) == pure_python(outcome, path.read_bytes())


def test_phases_yaml_is_read_by_libyaml() -> None:
    """The fast path is on: the repository's plan goes through libyaml and gives the pure-Python Plan."""
    text = (ROOT / "phases.yaml").read_text(encoding="utf-8")
    assert load._document(text)[1] == FAST
    assert parse_plan(text) == pure_python(parse_plan, text)


# --- odd inputs --------------------------------------------------------------------------------------

deep_flow = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
deep_block = "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "v\n"
too_many = "[" + "0, " * (MAX_NODES + 1) + "]\n"

ROUTED, TRIED = False, True  # does libyaml try to read it?

ODD = {
    # read by pyyaml without trying libyaml, which reads these otherwise
    "tab in a key": (MINIMAL.replace("version", "v\tersion", 1), ROUTED),
    "tab as indentation": (MINIMAL.replace("\n  ", "\n\t", 1), ROUTED),
    "tab after a value": ("version: 1\t\nname: x\n", ROUTED),
    "byte-order mark first": ("\ufeff" + MINIMAL, ROUTED),
    "byte-order mark inside": (MINIMAL.replace("name:", "na\ufeffme:", 1), ROUTED),
    "question mark in a flow key": ("{a?b: 1}\n", ROUTED),
    "explicit key": ("? version\n: 1\n", ROUTED),
    "empty tag": ("key: !\n", ROUTED),
    "local tag": ("version: !custom 1\n", ROUTED),
    "core tag": ("version: !!int 1\nname: !!str demo\n", ROUTED),
    "python tag": ((ROOT / "tests" / "plans" / "python_tag.yaml").read_text(), ROUTED),
    "NUL": ("version: 1\x00\n", ROUTED),
    "bell": ("name: a\x07b\n", ROUTED),
    "DEL": ("name: a\x7fb\n", ROUTED),
    "C1 control": ("name: a\x9fb\n", ROUTED),
    "noncharacter U+FFFE": ("name: a\ufffeb\n", ROUTED),
    "no line break at the end": (MINIMAL.rstrip("\n"), ROUTED),
    "an empty value at the very end": (MINIMAL + "description:", ROUTED),
    "document marker at the very end": ("---", ROUTED),
    "CR line endings": (MINIMAL.replace("\n", "\r"), ROUTED),
    # libyaml tries (and if it refuses, pyyaml words the refusal)
    "anchor and alias": ("a: &x 1\nb: *x\n", TRIED),
    "alias alone": ("*x\n", TRIED),
    "billion laughs": ((ROOT / "tests" / "plans" / "billion_laughs.yaml").read_text(), TRIED),
    "merge key": ("base: {a: 1}\nother:\n  <<: {a: 2}\n", TRIED),
    "deep flow nesting": (deep_flow, TRIED),
    "deep block nesting": (deep_block, TRIED),
    "too many values": (too_many, TRIED),
    "empty": ("", TRIED),
    "blank lines": ("\n   \n\n", TRIED),
    "only a comment": ("# nothing here\n", TRIED),
    "explicit empty document": ("---\n", TRIED),
    "null root": ("~\n", TRIED),
    "scalar root": ("hello\n", TRIED),
    "number root": ("42\n", TRIED),
    "sequence root": ("- version: 1\n", TRIED),
    "flow mapping plan": ("{version: 1, name: demo, region: us-east-2, flags: {}, phases: []}\n", TRIED),
    "flow plan in full": (
        '{version: 1, name: demo, region: us-east-2, flags: {k: {parameter: /app/k, rollback: "off"}},'
        ' phases: [{name: p1, set: {k: "on"}}]}\n', TRIED),
    "two documents": ("a: 1\n---\nb: 2\n", TRIED),
    "document end marker": ("---\n" + MINIMAL + "...\n", TRIED),
    "YAML directive": ("%YAML 1.1\n---\n" + MINIMAL, TRIED),
    "YAML 2.0 directive": ("%YAML 2.0\n---\n" + MINIMAL, TRIED),
    "comments everywhere": ("# head\n" + MINIMAL.replace("\n", "  # note\n"), TRIED),
    "CRLF line endings": (MINIMAL.replace("\n", "\r\n"), TRIED),
    "NEL and separators as line breaks": ("a: 1\x85b: 2\u2028c: 3\u2029d: 4\n", TRIED),
    "unicode keys and values": (MINIMAL.replace("name: ", "descripción: «ünïcödé» 🚀\nname: ", 1), TRIED),
    "unicode before an error": ("é: ü\nname: [x\n", TRIED),
    "unclosed flow sequence": ("version: 1\nname: [demo\n", TRIED),
    "unclosed quote": ("version: 1\nname: 'demo\n", TRIED),
    "mapping in a plain value": ("version: 1\nname: a: b\n", TRIED),
    "bad indentation": ("flags:\n  a: 1\n b: 2\n", TRIED),
    "duplicate keys": (MINIMAL + MINIMAL.splitlines(keepends=True)[0], TRIED),
    "long simple key": ("k" * 1100 + ": 1\n", TRIED),
    "escaped surrogate": ('name: "\\ud800"\n', TRIED),
    "escapes": ('name: "\\x41\\u00e9\\U0001F600\\N\\_\\L\\P\\/\\t"\n', TRIED),
    "block scalars": ("a: |2-\n   x\n  y\nb: >+\n  folded\n  text\n\n", TRIED),
    "plain style matters (a number where text is wanted)": (MINIMAL.replace('"false"', "false"), TRIED),
    "quoted keys": ("'version': 1\n\"name\": demo\n", TRIED),
    "colon in a flow plain scalar": ("{a:b, c: d}\n", TRIED),
}


@pytest.mark.parametrize("name", ODD)
def test_odd_inputs_read_alike(name: str) -> None:
    text, libyaml_tries = ODD[name]
    assert load._libyaml_reads_it_alike(text) == libyaml_tries
    assert_alike(text)


def test_limits_refuse_on_the_fast_path_too() -> None:
    """libyaml's reading is held to the same limits (then pyyaml words the refusal)."""
    for text in ("a: &x 1\n", deep_flow, too_many, "a: {<<: {b: 1}}\n"):
        with pytest.raises(Violation):
            load._LibyamlLoader(text).get_single_node()


# --- random edits of real plans, generated documents -------------------------------------------------

# Characters with a meaning in YAML (and line breaks of every kind), a few letters, and the characters
# routed to pyyaml, so edits reach both paths.
EDIT_CHARS = st.sampled_from(list(" :-#'\"\n\r{}[],&*|>%@`.~0a\\") + ["\r\n", "\t", "?", "!", "é", "\x85", "\u2028",
                                                                        "\ufeff", "\x00", "\x7f", "🚀"])
EDIT = st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.floats(0, 1, exclude_max=True), EDIT_CHARS)


def edited(text: str, edits: list) -> str:
    for op, where, char in edits:
        at = int(where * (len(text) + 1))
        if op == "insert":
            text = text[:at] + char + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + 1:]
        else:
            text = text[:at] + char + text[at + 1:]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PLAN_TEXTS), st.lists(EDIT, min_size=1, max_size=4))
@example(MINIMAL, [("insert", 0.0, "\t")])
@example(MINIMAL, [("replace", 0.5, "?")])
def test_edited_plans_read_alike(text: str, edits: list) -> None:
    assert_alike(edited(text, edits))


# YAML-ish pieces: indentation, keys, block and flow collections, quoted and block scalars, comments.
TOKENS = st.sampled_from([
    "\n", "\n  ", "\n    ", "\r\n", " ", "  ", "- ", "-", ": ", ":", "key", "name", "é", "1", "1.5", "true", "null",
    "~", "''", "'a b'", '""', '"a\\nb"', '"\\x41"', "[", "]", "{", "}", ", ", ",", "# c", "#", "|", "|-", ">", ">2",
    "---", "...", "&a ", "*a", "<<", "%YAML 1.1", "@", "`", "\\", "0x1F", "2024-01-01", "=", "\x85", "\u2028",
])
yaml_soup = st.lists(TOKENS, max_size=40).map("".join)
data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
dumped = st.builds(lambda value, flow, unicode, width: yaml.safe_dump(value, default_flow_style=flow,
                                                                     allow_unicode=unicode, width=width),
                   data, st.sampled_from([False, True, None]), st.booleans(), st.sampled_from([20, 80]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_soup | dumped)
def test_generated_documents_read_alike(text: str) -> None:
    assert_alike(text)
