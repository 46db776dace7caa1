"""The ``qrt`` command line: a click group, the one place where errors become exit codes.

Exit codes follow Terraform: 0 success (no changes), 1 any error (usage errors included),
2 success with changes pending (``plan --detailed-exitcode``), 130 interrupted (Ctrl-C), however
many times and wherever the interrupt lands.

``--debug`` (or ``QRT_DEBUG=1``) and ``--no-color`` (or any non-empty ``NO_COLOR``) are global:
accepted before the command and after it, at any depth (``qrt account list --debug``). So are the
project options ``-C``/``--chdir``, ``--account``, ``--env`` and ``--lockfile`` on every command
that works on a project (``qrt plan --env prod``); given on both sides, the later one wins.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from qrt_apply import __version__
from qrt_apply.errors import QrtError
from qrt_apply.runtime.base import Runtime

__all__ = ["AppContext", "cli", "main"]


@dataclass
class AppContext:
    """What every command shares: the project directory, the chosen account, and the project as the
    Python API sees it (``api()``), which opens the runtime on first need."""

    project_dir: Path
    account: str | None = None
    debug: bool = False
    env: str | None = None  # --env / QRT_ENV: an environment of qrt.yaml
    lockfile: Path | None = None  # --lockfile
    color: bool | None = None  # False: no escapes at all; None: styles on a terminal
    _runtime: Runtime | None = field(default=None, repr=False)  # given by a caller (tests)
    _api: Any = field(default=None, repr=False)
    _interrupted: bool = field(default=False, repr=False)

    def project(self) -> Any:
        """The project's settings (paths, ``qrt.yaml``), read now."""
        from qrt_apply.project import load_project

        return load_project(self.project_dir, env=self.env, lockfile=self.lockfile)

    def api(self) -> Any:
        """The :class:`qrt_apply.api.Project` of this command, made once; closed with the command."""
        if self._api is None:
            from qrt_apply.api import Project

            self._api = Project.load(
                self.project_dir,
                account=self.account,
                runtime=self._runtime,
                env=self.env,
                lockfile=self.lockfile,
            )
            click.get_current_context().find_root().call_on_close(self._close)
        return self._api

    def open_runtime(self, *, read_only: bool = False) -> Runtime:
        """The project's runtime, opened once per command; ``read_only`` for commands that only look."""
        runtime: Runtime = self.api().open_runtime(read_only=read_only)
        return runtime

    def _close(self) -> None:
        # Also a Ctrl-C the command did not catch: it is in flight while click closes the context.
        self._api.close(interrupted=self._interrupted or _is_interrupt(sys.exc_info()[1]))


def _is_interrupt(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a Ctrl-C, also as the ``click.Abort`` that click (or its prompt) makes of
    it; an Abort from end of input at a prompt is not one."""
    if isinstance(exc, click.Abort):
        exc = exc.__cause__ or exc.__context__
    return isinstance(exc, KeyboardInterrupt)


def debug_requested(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> bool:
    """``--debug`` anywhere before a ``--``, or ``QRT_DEBUG`` set to anything but 0/false/no."""
    options = list(argv)[: list(argv).index("--")] if "--" in argv else list(argv)
    flag = environ.get("QRT_DEBUG", "").strip().lower()
    return "--debug" in options or flag not in ("", "0", "false", "no")


def color_disabled(no_color: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """``--no-color``, or ``NO_COLOR`` set to any non-empty value (https://no-color.org)."""
    return no_color or bool(environ.get("NO_COLOR"))


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    app = ctx.find_object(AppContext)
    if value and app is not None:
        app.debug = True


def _set_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.color = False  # what click.echo asks in this command's thread
        app = ctx.find_object(AppContext)
        if app is not None:
            app.color = False  # what consoles on worker threads are told


def _set_project_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A project option given after the command: it replaces what the group set (or defaulted)."""
    app = ctx.find_object(AppContext)
    if value is None or app is None or param.name is None:
        return
    if param.name == "env":
        value = value or None  # --env "" chooses nothing, as an empty QRT_ENV does
    setattr(app, param.name, value)


def _project_options(taken: set[str]) -> list[click.Option]:
    """The group's project options, again for a command: same names, types and help, no default
    (an option not given after the command leaves the group's value alone). Skips any whose
    name the command already uses for something else (``taken``)."""
    options = []
    for param in cli.params:
        if (
            isinstance(param, click.Option)
            and param.name in _PROJECT_OPTIONS
            and not taken & set(param.opts)
        ):
            options.append(
                click.Option(
                    [*param.opts, param.name],  # the AppContext field it sets: project_dir for -C
                    type=param.type,
                    default=None,
                    expose_value=False,
                    callback=_set_project_option,
                    metavar=param.metavar,
                    help=param.help,
                )
            )
    return options


# The group's options that name the project (AppContext fields), also accepted after a command.
_PROJECT_OPTIONS = frozenset({"project_dir", "account", "env", "lockfile"})
# Commands that work on no project: the project options would mean nothing there.
_PROJECTLESS = {"account", "merge-lockfile", "schema", "serve", "users"}


def _with_global_flags(command: click.Command, *, project: bool = False) -> click.Command:
    """Give ``command`` (and a group's subcommands) ``--debug`` and ``--no-color``, and with
    ``project`` the project options, so they work after the command name too; they set the shared
    AppContext and are not passed to callbacks."""
    names = {opt for param in command.params for opt in param.opts}
    if project and "--lockfile" not in names:  # added once: the commands are module objects
        command.params.extend(_project_options(names))
    if "--debug" not in names:
        command.params.append(
            click.Option(
                ["--debug"],
                is_flag=True,
                expose_value=False,
                callback=_set_debug,
                help="Show tracebacks for errors (also QRT_DEBUG=1).",
            )
        )
    if "--no-color" not in names:
        command.params.append(
            click.Option(
                ["--no-color"],
                is_flag=True,
                expose_value=False,
                callback=_set_no_color,
                help="No colours or other escapes (also NO_COLOR=1).",
            )
        )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_global_flags(sub, project=project)
    return command


class QrtGroup(click.Group):
    """Runs commands with Terraform's exit codes and one-line errors (``--debug`` for tracebacks)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return _with_global_flags(command, project=cmd_name not in _PROJECTLESS)
        found = super().get_command(ctx, cmd_name)
        if found is None:
            return None
        return _with_global_flags(found, project=cmd_name not in _PROJECTLESS)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(args) if args is not None else sys.argv[1:]
        debug = debug_requested(argv)
        try:
            rv = super().main(
                argv, prog_name or "qrt", complete_var, standalone_mode=False, **extra
            )
            code = rv if isinstance(rv, int) else 0
        except click.ClickException as exc:
            exc.show()
            code = 1
        except (click.Abort, KeyboardInterrupt) as exc:
            if _is_interrupt(exc):
                click.echo("Interrupted.", err=True)
                code = 130
            else:
                click.echo("Aborted.", err=True)
                code = 1
        except QrtError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"Error: {exc}", err=True)
            code = exc.exit_code
        except Exception as exc:  # a bug: say so briefly; --debug shows where
            if debug:
                traceback.print_exc()
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)",
                err=True,
            )
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=QrtGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qrt")
@click.option(
    "-C",
    "--chdir",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Project directory (holding qrt.yaml, manifests/, qrt.lock).",
)
@click.option("--account", default=None, help="Saved account to use (see `qrt account list`).")
@click.option(
    "--env",
    "env",
    envvar="QRT_ENV",
    default=None,
    metavar="NAME",
    help="Environment of qrt.yaml to work on (its target and lockfile); also QRT_ENV.",
)
@click.option(
    "--lockfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Use this lockfile instead of qrt.yaml's (with local state of its own under .qrt/).",
)
@click.option(
    "--debug", is_flag=True, help="Show tracebacks for errors (anywhere; also QRT_DEBUG=1)."
)
@click.option(
    "--no-color", is_flag=True, help="No colours or other escapes (anywhere; also NO_COLOR=1)."
)
@click.pass_context
def cli(
    ctx: click.Context,
    project_dir: Path,
    account: str | None,
    env: str | None,
    lockfile: Path | None,
    debug: bool,
    no_color: bool,
) -> None:
    """qrt: GitOps for Qiskit Runtime programs and job batches."""
    debug = debug or debug_requested([])
    env = env or None  # QRT_ENV= (empty) chooses nothing
    color = False if color_disabled(no_color) else None
    if color is False:
        ctx.color = False  # subcommands' contexts inherit it
    if isinstance(ctx.obj, AppContext):  # given by a caller (tests inject a runtime this way)
        ctx.obj.project_dir, ctx.obj.account, ctx.obj.debug = project_dir, account, debug
        ctx.obj.env, ctx.obj.lockfile, ctx.obj.color = env, lockfile, color
    else:
        ctx.obj = AppContext(
            project_dir=project_dir,
            account=account,
            debug=debug,
            env=env,
            lockfile=lockfile,
            color=color,
        )


# Commands are imported only when invoked, so `qrt plan` never pays for the server's imports.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("qrt_apply.commands.core", "validate"),
    "plan": ("qrt_apply.commands.core", "plan"),
    "apply": ("qrt_apply.commands.core", "apply"),
    "refresh": ("qrt_apply.commands.core", "refresh"),
    "unlock": ("qrt_apply.commands.core", "unlock"),
    "init": ("qrt_apply.commands.scaffold", "init"),
    "schema": ("qrt_apply.commands.scaffold", "schema"),
    "merge-lockfile": ("qrt_apply.commands.lockcmds", "merge_lockfile"),
    "mv": ("qrt_apply.commands.lockcmds", "mv"),
    "forget": ("qrt_apply.commands.lockcmds", "forget"),
    "import": ("qrt_apply.commands.adopt", "import_"),
    "show": ("qrt_apply.commands.inspect", "show"),
    "results": ("qrt_apply.commands.inspect", "results"),
    "account": ("qrt_apply.runtime.accounts_cli", "account"),
    "backends": ("qrt_apply.runtime.accounts_cli", "backends"),
    "programs": ("qrt_apply.runtime.accounts_cli", "programs"),
    "jobs": ("qrt_apply.runtime.accounts_cli", "jobs"),
    "serve": ("qrt_apply.server.cli", "serve"),
    "users": ("qrt_apply.server.users_cli", "users"),
}


def main() -> None:
    """The ``qrt`` program: runs one command in this process, then exits with its status."""
    try:
        cli.main(prog_name="qrt")
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's message was printed
        code = 130
    if code == 130:
        # Interrupted and on the way out: a further Ctrl-C must not turn the interpreter's
        # shutdown into a traceback and another exit status.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
