"""What every command shares: settings, the runtime, one-line errors and exit codes."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from tamma_tools.errors import ConfigError, ProviderError, TammaToolsError

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_PROVIDER = 4
EXIT_INTERNAL = 70

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Options of the top-level command, handed to subcommands through click's context."""

    def __init__(self, config: Path | None, debug: bool) -> None:
        self.config_path = config
        self.debug = debug

    def settings(self) -> Any:
        from tamma_tools.config import Settings, load_settings

        if self.config_path is None:
            return Settings()
        return load_settings(self.config_path)

    def runtime(self, **options: Any) -> Any:
        from tamma_tools.runtime import Runtime

        return Runtime(self.settings(), **options)


def fail(message: str, code: int = EXIT_PROBLEM) -> None:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """One line saying what is wrong and what to do; the traceback only with ``--debug``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except ConfigError as exc:
            _maybe_trace()
            fail(f"{exc.message}\n  fix the configuration and try again", EXIT_CONFIG)
        except ProviderError as exc:
            _maybe_trace()
            fail(f"the model server failed: {exc.message} [{exc.code}]", EXIT_PROVIDER)
        except TammaToolsError as exc:
            _maybe_trace()
            fail(f"{exc.message} [{exc.code}]", EXIT_PROBLEM)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as exc:
            _maybe_trace()
            fail(
                f"internal error: {type(exc).__name__}: {exc}\n  run again with --debug for "
                "the traceback and report it",
                EXIT_INTERNAL,
            )

    return wrapper  # type: ignore[return-value]


def _maybe_trace() -> None:
    ctx = click.get_current_context(silent=True)
    state = ctx.find_object(State) if ctx is not None else None
    if (state is not None and state.debug) or os.environ.get("TAMMA_TOOLS_DEBUG"):
        traceback.print_exc()


pass_state = click.make_pass_decorator(State)
