"""The ``orchestrator`` command. Each command group lives in its own module and registers on ``app``.

The CLI sits at the top of the dependency graph (CLI → flows → tasks → providers/sandbox → core),
so its modules import flows lazily, inside commands, to keep ``--help`` fast.
"""

from __future__ import annotations

import os
import sys

import typer
import typer.core
from rich.console import Console

# typer (>= 0.29) bundles its own click: its usage errors inherit typer.TyperException, not
# click.ClickException; the subclass for "no command given" has no public name.
from typer._click.core import Command
from typer._click.exceptions import NoArgsIsHelpError

from orchestrator.errors import OrchestratorError

# Prefect's telemetry tries DNS, which fails offline and litters the logs, and its notice would sit on
# a progress bar: both off before Prefect is imported.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Prefect waits 20 s for its temporary server; on a loaded 2-core machine its start takes longer (seen
# in CI: "Timed out while attempting to connect to ephemeral Prefect API server").
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from orchestrator.cli.prefect_server import use_running_server  # noqa: E402

# Commands that run flows report to a running server rather than start a temporary one (before
# anything imports Prefect, which reads its settings once); `traces` and `--help` need no server.
if sys.argv[1:2] and sys.argv[1] not in ("traces", "--help"):
    use_running_server()

app = typer.Typer(
    name="orchestrator",
    help="Send a task through several LLMs, verify what they produce, judge the candidates, keep every step.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True, emoji=False)

from orchestrator.cli import traces as _traces  # noqa: E402,F401

# `orchestrator traces ...` imports only what it needs: the other command groups (and what they
# import) are registered only when another command is asked for.
if sys.argv[1:2] != ["traces"]:
    from orchestrator.cli import cache as _cache  # noqa: F401
    from orchestrator.cli import importers as _importers  # noqa: F401
    from orchestrator.cli import pairs as _pairs  # noqa: F401
    from orchestrator.cli import router as _router  # noqa: F401
    from orchestrator.cli import run as _run  # noqa: F401  (registers commands)
    from orchestrator.cli import sandbox as _sandbox  # noqa: F401
    from orchestrator.cli import sweep as _sweep  # noqa: F401
    from orchestrator.cli import testgen as _testgen  # noqa: F401


def _usage_error(exc: typer.TyperException) -> None:
    """One line for a command-line mistake (typer's own would print the usage and a box)."""
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, NoArgsIsHelpError):
        print(exc.format_message())  # the help, on stdout, as `--help` prints it
        message = "name a command (listed above)"
    else:
        message = exc.format_message().replace("\n", " ").rstrip(".")
        if ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
    err_console.print("[red]error:[/red] ", end="")
    err_console.print(message, markup=False, emoji=False, highlight=False, soft_wrap=True)


def _plain_metavars(command: Command) -> None:
    """Help without typer's ``<bool>`` beside flags (``--help`` too) and ``<list[str]>`` beside a
    repeatable option (named after the option instead); an option's own ``metavar`` wins."""
    ctx = command.make_context(command.name, [], resilient_parsing=True)
    for param in [*command.params, command.get_help_option(ctx)]:
        if isinstance(param, typer.core.TyperOption) and param.metavar is None:
            if param.is_flag:
                param.metavar = ""
            elif param.multiple:
                param.metavar = param.opts[0].lstrip("-").upper()
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def main() -> None:
    command = typer.main.get_command(app)
    _plain_metavars(command)
    try:
        result = command.main(prog_name="orchestrator", standalone_mode=False)
    except OrchestratorError as exc:
        err_console.print("[red]error:[/red] ", end="")
        err_console.print(str(exc), markup=False, emoji=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        _usage_error(exc)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
