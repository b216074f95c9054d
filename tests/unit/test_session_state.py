"""The pools skip asyncpg's reset on release (``shared.resources.keep_session``) because no
statement leaves session state on a connection. This checks the source for each kind of
state the default reset would undo, in every SQL text of the services and ``shared``:
a session ``SET``, ``set_config``, ``LISTEN`` (or a listener), a session advisory lock, a
cursor kept past its transaction, a temporary table kept past its transaction.

``shared/migrate.py`` is left out: it takes its session advisory lock on a connection of
its own, closed at the end, never on a pool's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXEMPT = {ROOT / "shared" / "migrate.py"}

# Each pattern is a kind of session state; a statement starts a text or follows a ';'.
SESSION_STATE = {
    "session SET": re.compile(r"(?:^|;)\s*SET\s+(?!LOCAL\b)(?:SESSION\s+)?[\w.]+\s*(?:=|TO\b)",
                              re.I),
    "set_config": re.compile(r"\bset_config\s*\(", re.I),
    "LISTEN": re.compile(r"(?:^|;)\s*LISTEN\b", re.I),
    "session advisory lock": re.compile(r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.I),
    "cursor WITH HOLD": re.compile(r"\bWITH\s+HOLD\b", re.I),
    "temporary table kept": re.compile(
        r"\bCREATE\s+TEMP(?:ORARY)?\s+TABLE\b(?![^;]*ON\s+COMMIT\s+DROP)", re.I | re.S),
}


def _texts(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant, and every f-string with its fields left out."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            found.append((node.lineno, "".join(
                part.value for part in node.values
                if isinstance(part, ast.Constant) and isinstance(part.value, str))))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def _listeners(tree: ast.AST) -> list[int]:
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "add_listener"]


def _sources() -> list[Path]:
    return sorted(path for folder in ("services", "shared")
                  for path in (ROOT / folder).rglob("*.py") if path not in EXEMPT)


def test_the_checked_source_is_there() -> None:
    assert len(_sources()) > 50


def test_no_statement_leaves_session_state_on_a_pooled_connection() -> None:
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        for line, text in _texts(tree):
            found += [f"{where}:{line}: {kind}" for kind, pattern in SESSION_STATE.items()
                      if pattern.search(text)]
        found += [f"{where}:{line}: LISTEN (add_listener)" for line in _listeners(tree)]
    assert found == []


def test_the_patterns_catch_what_they_are_for() -> None:
    caught = {
        "session SET": "SELECT 1; SET SESSION statement_timeout TO 0",
        "set_config": "SELECT set_config('work_mem', '64MB', false)",
        "LISTEN": "LISTEN lh_changes",
        "session advisory lock": "SELECT pg_advisory_lock($1)",
        "cursor WITH HOLD": "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "temporary table kept": "CREATE TEMP TABLE t AS SELECT 1",
    }
    for kind, text in [*caught.items(), ("session SET", "SET work_mem = '64MB'")]:
        assert SESSION_STATE[kind].search(text), text
    allowed = [
        "SET LOCAL work_mem = '64MB'",
        "UPDATE stats_domain_daily d\n   SET clicks = d.clicks - 1",
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
        "CREATE TEMP TABLE t ON COMMIT DROP AS SELECT 1",
        "INSERT INTO t VALUES (1) ON CONFLICT (k) DO UPDATE SET n = t.n + 1",
        "Set a per-country destination",  # an OpenAPI summary, not SQL
    ]
    for text in allowed:
        assert not any(pattern.search(text) for pattern in SESSION_STATE.values()), text
