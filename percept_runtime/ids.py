"""The one rule for the names a caller gives things that later travel in URL
paths: collection ids (`/api/collections/{id}`) and subjects
(`/api/collections/{id}/subjects/{subject}`). The gateway checks them with it
before calling the face service, and the face service's gallery checks them
with it too, so REST and gRPC callers get the same answer.

A name must come back exactly as it was created, through every client: a
path segment made only of dots is a "dot segment" to every HTTP library and
browser ('.' is dropped, '..' climbs a level: `DELETE
/api/collections/people/subjects/..` would name the collection itself), and
percent-encoding does not help (browsers decode `%2E` first). So such names
are refused where they are created (a new collection, a new face's subject);
lookups still accept a legacy one, so a gRPC caller can delete it.
Plain Python: no gRPC, no web framework.
"""

from __future__ import annotations

import re

from percept_runtime.errors import InvalidInput

COLLECTION_ID_MAX = 64
COLLECTION_ID_CHARS = re.compile(rf"[A-Za-z0-9._-]{{1,{COLLECTION_ID_MAX}}}")
# The same rule as a JSON-schema pattern (documentation; ECMA regex).
COLLECTION_ID_PATTERN = rf"^(?!\.+$)[A-Za-z0-9._-]{{1,{COLLECTION_ID_MAX}}}$"
COLLECTION_ID_RULE = (
    f"1-{COLLECTION_ID_MAX} letters, digits, '.', '_' or '-', not only dots"
    " (a URL path cannot carry '.', '..' or '...' as themselves)"
)
SUBJECT_RULE = (
    "a name with something besides dots in each '/'-separated part"
    " (a URL path cannot carry '.', '..' or '...' as themselves)"
)


def only_dots(text: str) -> bool:
    """'.', '..', '...': a path segment no client sends as itself."""
    return bool(text) and text.strip(".") == ""


def collection_id_problem(collection_id: object, *, new: bool = True) -> str | None:
    """Why `collection_id` is not a valid id (None when it is). `new=False`
    (a lookup) lets through an all-dots id created before the rule."""
    text = str(collection_id)[:80]
    if not isinstance(collection_id, str) or not COLLECTION_ID_CHARS.fullmatch(collection_id):
        return f"collection id {text!r} is invalid: use {COLLECTION_ID_RULE}"
    if new and only_dots(collection_id):
        return f"collection id {text!r} is only dots: use {COLLECTION_ID_RULE}"
    return None


def check_collection_id(collection_id: str, *, new: bool = False) -> str:
    """The id, or InvalidInput saying what is accepted."""
    problem = collection_id_problem(collection_id, new=new)
    if problem is not None:
        raise InvalidInput(problem)
    return collection_id


def subject_problem(subject: str) -> str | None:
    """Why a new face's subject cannot be a URL path's last part (None when it can).
    Only the dots rule: length and control characters are the gallery's checks."""
    if any(only_dots(part) for part in subject.split("/")):
        return f"subject {subject[:80]!r} cannot be used: use {SUBJECT_RULE}"
    return None
