"""The gallery's SQL is written once (face_service/gallery/sql.py); each
database's dialect must spell every word the schema uses, and the PostgreSQL
rewrite of `?` placeholders must not meet a `%` it would misread. The queries
themselves run on both databases in tests/integration/test_gallery_store.py."""

from __future__ import annotations

import ast
import re
import string
import uuid
from pathlib import Path

import pytest

from face_service.gallery import sql
from face_service.gallery.postgres import POSTGRES
from face_service.gallery.sqlite import SQLITE

DIALECTS = [SQLITE, POSTGRES]


def schema_words() -> set[str]:
    return {
        field
        for script in sql.MIGRATIONS
        for _, field, _, _ in string.Formatter().parse(script)
        if field is not None
    }


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: type(d).__name__)
def test_each_dialect_spells_every_word_of_the_schema(dialect):
    assert set(dialect.types) == schema_words()
    for script in sql.MIGRATIONS:
        ddl = script.format(**dialect.types)
        assert "{" not in ddl.replace("'{}'", "")  # PostgreSQL's empty array literal


def test_postgres_placeholders_meet_no_percent_sign():
    tree = ast.parse(Path(sql.__file__).read_text())
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    sql_words = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE)\b")
    queries = [s for s in strings if isinstance(s, str) and sql_words.search(s)]
    assert queries and not [q for q in queries if "%" in q]
    assert POSTGRES.sql("a = ? AND b = ?") == "a = %s AND b = %s"
    assert SQLITE.sql("a = ?") == "a = ?"


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: type(d).__name__)
def test_a_face_id_list_binds_one_placeholder_per_parameter(dialect):
    ids = [uuid.uuid4() for _ in range(3)]
    clause, params = dialect.in_face_ids("face_id", ids)
    assert clause.count("?") == len(params)
