"""What every `percept` command shares: the app, the consoles, the exit codes,
the connection options (`gateway_command`, for every command that talks to the
gateway), and `sdk_command`, the one shape of a command whose work is one SDK
call (list, show, add, rm, ...).

Exit codes: 0 ok; 1 the work failed (a task failed or was cancelled, the server
failed, a collection to create exists already); 2 usage (bad arguments, a file
that cannot be read, a request the server refused as invalid (an image without
a usable face), an unknown task, collection, face or subject, a refused API
key); 3 the server cannot be reached (or has no replica to serve).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from percept import errors, stack


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    UNREACHABLE = 3


USAGE_ERRORS = (
    errors.InvalidInput,
    errors.TooLarge,
    errors.NotFound,
    errors.Unauthorized,
    errors.Forbidden,
)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

app = typer.Typer(
    name="percept",
    help="Face and object detection through a Percept gateway.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 ok, 1 the work failed, 2 usage error, 3 server unreachable.",
)

# --- options shared by the commands ------------------------------------------------------------

Server = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        envvar="PERCEPT_URL",
        help="Gateway URL (default: the running `make run` stack's, found in .run/stack.json, "
        "else http://127.0.0.1:8000).",
        show_default=False,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="PERCEPT_API_KEY",
        help="API key, sent as 'Authorization: Bearer <key>' (default: the `make run` "
        "stack's admin key, when the server is the stack's).",
        show_default=False,
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print JSON (the API's task objects) instead of tables.")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DEFAULT_SERVER = None  # PERCEPT_URL, else the stack's (percept.stack), else :8000


# --- errors -> exit codes --------------------------------------------------------------------


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, errors.Unavailable):
        return ExitCode.UNREACHABLE
    if isinstance(error, (*USAGE_ERRORS, ValueError, TypeError, OSError)):
        return ExitCode.USAGE
    return ExitCode.FAILED


def fail(error: BaseException) -> NoReturn:
    err.print(f"[red]error:[/red] {Text(str(error) or type(error).__name__).plain}")
    default = isinstance(error, errors.Unavailable) and stack.DEFAULT_URL in str(error)
    if default and stack.find_stack() is None:
        err.print(
            "no running `make run` stack was found (.run/stack.json here or in a parent, "
            "or PERCEPT_RUN_DIR): start one with `make run`, or name the gateway with "
            "--server / PERCEPT_URL"
        )
    raise typer.Exit(exit_code_for(error))


# --- talking to the gateway -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Gateway:
    """The gateway a command talks to, as its --server and --api-key name it."""

    server: str | None
    api_key: str | None

    def call(self, fn: Callable[[Any], Awaitable[Any]], timeout: float = 30.0) -> Any:
        """Run fn(client) against the gateway, waiting `timeout` seconds at the
        most; an SDK error or a bad argument becomes its exit code."""
        import percept

        async def go():
            async with percept.AsyncClient(
                self.server, api_key=self.api_key, timeout=min(30.0, timeout), wait_timeout=timeout
            ) as client:
                return await fn(client)

        try:
            return asyncio.run(go())
        except (errors.PerceptError, ValueError, TypeError, OSError) as error:
            fail(error)


async def first(items: AsyncIterator[Any], limit: int) -> list[Any]:
    """The first `limit` items of a paged listing (the SDK's iter_*)."""
    found: list[Any] = []
    async for item in items:
        found.append(item)
        if len(found) >= limit:
            break
    return found


def files_argument(help: str, metavar: str) -> Any:
    """Files named on the command line, which must exist and be readable."""
    return Annotated[
        list[Path],
        typer.Argument(help=help, metavar=metavar, exists=True, dir_okay=False, readable=True,
                       show_default=False),
    ]  # fmt: skip


def titled(table: Callable[[str, Sequence[Any]], Any], title: str) -> Callable[..., None]:
    """`shows` for a listing: the rows as `table`, under `title` formatted
    with the command's parameters and n, the number of rows."""
    return lambda rows, **params: out.print(table(title.format(n=len(rows), **params), rows))


def one(table: Callable[[str, Sequence[Any]], Any], key: str) -> Callable[..., None]:
    """`shows` for one thing: a `table` of it, titled with its `key` attribute."""
    return lambda item, **_: out.print(table(getattr(item, key), [item]))


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def confirm(what: str) -> None:
    """Ask before deleting `what`; a script (no terminal) must say --yes instead."""
    if not sys.stdin.isatty():
        fail(ValueError(f"deleting {what} needs --yes when not run interactively"))
    typer.confirm(f"Delete {what}?", abort=True, err=True)


# --- a command that talks to the gateway ------------------------------------------------------


def param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    """One command parameter (Typer calls commands with keywords)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=default)  # fmt: skip


def params_of(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters of `fn` as `param`s, their annotations evaluated."""
    own = inspect.signature(fn, eval_str=True).parameters.values()
    return [param(p.name, p.annotation, p.default) for p in own]


def gateway_command(group: typer.Typer, name: str):
    """Register `body` as the command `name` of `group`: a command that does
    its own work and printing, with the options every such command shares.
    Its parameters are the command's arguments and options in the order
    `--help` lists them, two of them standing for shared ones:

    - `gateway`: --server and --api-key; the body gets the `Gateway` they name,
      whose `call` runs its work with a client and turns errors into exit codes;
    - `as_json`, for a command that prints results: --json; the body gets it.

    Typer passes every parameter by name (a body may take them after a bare
    `*`). The docstring of `body` is the command's help."""

    def register(body: Callable[..., None]) -> Callable[..., None]:
        add_gateway_command(group, name, body, params_of(body))
        return body

    return register


def add_gateway_command(
    group: typer.Typer, name: str, body: Callable[..., None], params: Sequence[inspect.Parameter]
) -> None:
    """`gateway_command` with the parameters of `body` given as `params`."""
    shared = {
        "as_json": [param("as_json", AsJson, False)],
        "gateway": [param("server", Server, DEFAULT_SERVER), param("api_key", ApiKey, None)],
    }

    def command(**kwargs: Any) -> None:
        body(gateway=Gateway(kwargs.pop("server"), kwargs.pop("api_key")), **kwargs)

    # The signature Typer reads the options from.
    typed = [each for p in params for each in shared.get(p.name, [p])]
    command.__signature__ = inspect.Signature(typed)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in typed}
    command.__name__, command.__doc__ = body.__name__, body.__doc__
    group.command(name)(command)


# --- one command, one SDK call ------------------------------------------------------------------


def sdk_command(
    group: typer.Typer,
    name: str,
    *,
    shows: Callable[..., None] | None = None,
    listing: str | None = None,
    says: Callable[..., None] | None = None,
    deletes: str | None = None,
    timeout: float = 30.0,
):
    """Register `work(client, **its own parameters) -> awaitable` as the
    command `name` of `group`; the command adds --server and --api-key and:

    - with `shows(result, **parameters)`: prints the result for people, or
      with --json its `to_json()` (`{listing: [...]}` for a list);
    - with `says(result, **parameters)`: says what was done (nothing to show);
    - with `deletes` (what it deletes, formatted with the parameters): asks
      first unless --yes, and says it is deleted.
    The docstring of `work` is the command's help."""

    def register(work: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        add_sdk_command(
            group, name, work, params_of(work)[1:],
            shows=shows, listing=listing, says=says, deletes=deletes, timeout=timeout,
        )  # fmt: skip
        return work

    return register


def add_sdk_command(
    group: typer.Typer,
    name: str,
    work: Callable[..., Awaitable[Any]],
    own: list[inspect.Parameter],
    *,
    shows: Callable[..., None] | None = None,
    listing: str | None = None,
    says: Callable[..., None] | None = None,
    deletes: str | None = None,
    timeout: float = 30.0,
) -> None:
    """`sdk_command` with the parameters of `work` (after the client) given as `own`."""
    params = list(own)
    if deletes is not None:
        params.append(param("yes", Yes, False))
    if shows is not None:
        params.append(param("as_json", bool))
    params.append(param("gateway", Gateway))

    def command(gateway: Gateway, as_json: bool = False, **kwargs: Any) -> None:
        what = deletes.format(**kwargs) if deletes is not None else ""
        if deletes is not None and not kwargs.pop("yes"):
            confirm(what)
        result = gateway.call(lambda c: work(c, **kwargs), timeout)
        if as_json:
            print_json({listing: [r.to_json() for r in result]} if listing else result.to_json())
        elif shows is not None:
            shows(result, **kwargs)
        if says is not None:
            says(result, **kwargs)
        if deletes is not None:
            err.print(f"deleted {what}")
        raise typer.Exit(ExitCode.OK)

    command.__name__, command.__doc__ = work.__name__, work.__doc__
    add_gateway_command(group, name, command, params)


class Resource:
    """The standard commands of one kind of thing the gateway keeps by id (a
    collection, a webhook subscription, a source, a task): `list`, and commands
    such as show, delete, pause that are each one client method called with the
    id. For example:

        source = Resource(sources_app, "source_id", SourceId)
        source.list("sources", "Your sources.", shows=titled(table, "{n} sources"))
        source.command("show", "source", "One source.", shows=one(table, "source_id"))
        source.command("delete", "delete_source", "Forget it.", deletes="source {source_id}")

    `id_name` is the id argument's name (its metavar, and the name `deletes`
    and `shows`/`says` know it by); `id_type` its Annotated typer.Argument;
    `resolve(client, given)`, when given, turns what was typed into the id
    (a task's id from its first digits)."""

    def __init__(
        self,
        group: typer.Typer,
        id_name: str,
        id_type: Any,
        resolve: Callable[[Any, str], Awaitable[str]] | None = None,
    ) -> None:
        self.group, self.id_name, self.id_type, self.resolve = group, id_name, id_type, resolve

    def list(self, method: str, help: str, **how: Any) -> None:
        """`list`: client.<method>(), its items under the JSON key `method`."""

        async def work(client) -> Any:
            return await getattr(client, method)()

        work.__name__, work.__doc__ = method, help
        add_sdk_command(self.group, "list", work, [], listing=method, **how)

    def command(self, name: str, method: str, help: str, **how: Any) -> None:
        """`name ID`: client.<method>(id), registered as `sdk_command` does with
        `how` (shows, says, deletes, timeout) and `help` as its help."""

        async def work(client, **kwargs: Any) -> Any:
            given = kwargs[self.id_name]
            found = given if self.resolve is None else await self.resolve(client, given)
            return await getattr(client, method)(found)

        work.__name__, work.__doc__ = method, help
        own = [param(self.id_name, self.id_type)]
        add_sdk_command(self.group, name, work, own, **how)
