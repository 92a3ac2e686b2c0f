"""`percept collections ...` and `percept faces ...`: face collections from the command line.

percept collections create staff --description "people allowed in"
percept collections list
percept faces enroll staff ann.jpg --subject ann
percept faces list staff --subject ann
percept faces delete staff --subject ann
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from percept import Collection, EnrolledFace, errors
from percept.cli_common import (
    ExitCode,
    Gateway,
    Resource,
    app,
    err,
    exit_code_for,
    fail,
    files_argument,
    first,
    gateway_command,
    one,
    out,
    print_json,
    sdk_command,
    titled,
)
from percept.cli_options import option
from percept.face.v1 import face_service_pb2
from percept.rules import field_rule, option_rules

collections_app = typer.Typer(
    help="Create, list, show and delete face collections.", no_args_is_help=True
)
faces_app = typer.Typer(
    help="Enroll, list and delete the faces of a collection.", no_args_is_help=True
)
app.add_typer(collections_app, name="collections")
app.add_typer(faces_app, name="faces")

CollectionId = Annotated[str, typer.Argument(help="The collection's id.", show_default=False)]
Photos = files_argument("Photos of the subject (JPEG, PNG, WebP, BMP).", "IMAGE")
# Enrollment's options, ranged by the proto like a task's.
MaxFaces = option(
    "max_faces",
    field_rule(face_service_pb2.EnrollFacesRequest.DESCRIPTOR.fields_by_name["max_faces"]),
)
Upsample = option("upsample", option_rules("face", "image")["upsample"])


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def collections_table(title: str, collections: Sequence[Collection]) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("collection", "left"),
        ("faces", "right"),
        ("subjects", "right"),
        ("created", "left"),
        ("description", "left"),
    ):
        table.add_column(name, justify=justify)
    for c in collections:
        table.add_row(
            c.collection_id, str(c.face_count), str(c.subject_count), _when(c.created_at),
            c.description,
        )  # fmt: skip
    return table


def faces_table(title: str, faces: Sequence[EnrolledFace]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("face", "subject", "external id", "box (left, top, right, bottom)", "enrolled"):
        table.add_column(name)
    for f in faces:
        box = "(" + ", ".join(map(_fmt, f.box.as_tuple())) + ")" if f.box else ""
        table.add_row(f.face_id, f.subject, f.external_id or "", box, _when(f.created_at))
    return table


@gateway_command(collections_app, "create")
def collections_create(
    *,
    collection_id: CollectionId,
    description: Annotated[str, typer.Option(help="What the collection is for.")] = "",
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Succeed when it exists already (left as it is).")
    ] = False,
    as_json: bool,
    gateway: Gateway,
) -> None:
    """Create an empty face collection (exit 1 when it exists already, unless --exist-ok)."""

    async def create(client) -> tuple[Collection, bool]:
        try:
            return await client.create_collection(collection_id, description), True
        except errors.Conflict:
            if not exist_ok:
                raise
            return await client.collection(collection_id), False

    collection, created = gateway.call(create)
    if as_json:
        print_json(collection.to_json())
    elif created:
        out.print(f"created collection [bold]{collection.collection_id}[/bold]")
    else:
        out.print(
            f"collection [bold]{collection.collection_id}[/bold] exists already "
            f"({collection.face_count} faces, {collection.subject_count} subjects)"
        )
    raise typer.Exit(ExitCode.OK)


@sdk_command(
    collections_app,
    "list",
    listing="collections",
    shows=titled(collections_table, "{n} collections"),
)
def collections_list(
    client, limit: Annotated[int, typer.Option(min=1, help="Most collections shown.")] = 1000
):
    """List your face collections, by id."""
    return first(client.iter_collections(page_size=min(limit, 1000)), limit)


collection = Resource(collections_app, "collection_id", CollectionId)
collection.command(
    "show", "collection", "Show a collection: its face and subject counts.",
    shows=one(collections_table, "collection_id"),
)  # fmt: skip
collection.command(
    "delete", "delete_collection",
    "Delete a collection and every face in it, everywhere (asks first unless --yes).",
    deletes="collection {collection_id} and every face in it",
)  # fmt: skip


@gateway_command(faces_app, "enroll")
def faces_enroll(
    *,
    collection_id: CollectionId,
    images: Photos,
    subject: Annotated[str, typer.Option(help="Whose face it is.", show_default=False)],
    external_id: Annotated[
        str | None, typer.Option(help="Your own id for the face(s).", show_default=False)
    ] = None,
    max_faces: MaxFaces = None,
    upsample: Upsample = None,
    as_json: bool,
    gateway: Gateway,
) -> None:
    """Enroll the face in each image under a subject. An image without a usable face
    is refused with the reason (exit 2); the others are still enrolled."""

    async def enroll_all(client) -> list[tuple[Path, Any]]:
        done = []
        for path in images:
            try:
                enrolled = await client.enroll(
                    collection_id, path, subject, external_id=external_id,
                    max_faces=max_faces, upsample=upsample,
                )  # fmt: skip
                done.append((path, enrolled))
            except errors.PerceptError as error:
                if isinstance(error, errors.Unavailable | errors.NotFound):
                    raise  # nothing else will work either
                done.append((path, error))
        return done

    results = gateway.call(enroll_all, 120.0)
    failed = [(p, e) for p, e in results if isinstance(e, BaseException)]
    enrolled = [(p, r) for p, r in results if not isinstance(r, BaseException)]
    if as_json:
        print_json(
            [
                {"input": str(p), **r.to_json()}
                if not isinstance(r, BaseException)
                else {"input": str(p), "error": {"code": r.code, "message": str(r.message)}}
                for p, r in results
            ]
        )
    else:
        faces = [f for _, r in enrolled for f in r.faces]
        out.print(faces_table(f"{len(faces)} faces enrolled in {collection_id}", faces))
    for path, error in failed:
        err.print(f"[red]{path}:[/red] {Text(str(error)).plain}")
    if failed:
        raise typer.Exit(max(exit_code_for(e) for _, e in failed))
    raise typer.Exit(ExitCode.OK)


@sdk_command(
    faces_app, "list", listing="faces", shows=titled(faces_table, "{collection_id}: {n} faces")
)
def faces_list(
    client,
    collection_id: CollectionId,
    subject: Annotated[
        str | None, typer.Option(help="Only this subject's faces.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most faces shown.")] = 1000,
):
    """List a collection's enrolled faces."""
    faces = client.iter_faces(collection_id, subject=subject, page_size=min(limit, 1000))
    return first(faces, limit)


@gateway_command(faces_app, "delete")
def faces_delete(
    *,
    collection_id: CollectionId,
    face_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Ids of the faces to delete.", metavar="FACE_ID", show_default=False),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(help="Delete every face of this subject instead.", show_default=False),
    ] = None,
    as_json: bool,
    gateway: Gateway,
) -> None:
    """Delete faces by id, or every face of a subject (--subject), everywhere."""
    if bool(face_ids) == bool(subject):
        fail(ValueError("give face ids, or --subject (not both)"))

    async def delete(client) -> dict[str, Any]:
        if subject:
            return {"subject": subject, "deleted_faces": await client.delete_subject(
                collection_id, subject)}  # fmt: skip
        deleted, missing = [], []
        for face_id in face_ids or ():
            try:
                await client.delete_face(collection_id, face_id)
                deleted.append(face_id)
            except errors.NotFound as error:
                if "collection" in error.message and "does not exist" in error.message:
                    raise
                missing.append(face_id)
        return {"deleted_face_ids": deleted, "not_found": missing}

    outcome = gateway.call(delete, 60.0)
    if as_json:
        print_json(outcome)
    elif subject:
        out.print(f"deleted {outcome['deleted_faces']} faces of {subject}")
    else:
        out.print(f"deleted {len(outcome['deleted_face_ids'])} faces")
    for face_id in outcome.get("not_found", ()):
        err.print(f"[red]{face_id}:[/red] no such face in {collection_id}")
    raise typer.Exit(ExitCode.USAGE if outcome.get("not_found") else ExitCode.OK)
