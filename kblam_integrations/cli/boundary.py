"""The command boundary: every user error becomes one line on stderr and exit code 1, never a traceback."""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable, TypeVar

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors its own click
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover - older typer runs on the click package
    from click import exceptions as _click_exc

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["CLIError", "KBLaMGroup", "fail", "guard", "one_line"]


class CLIError(Exception):
    """A user error reported as one line, exit code 1."""


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def fail(message: object, code: int = 1) -> "typer.Exit":
    """Print ``Error: <message>`` on stderr; returns the ``typer.Exit`` to raise."""
    typer.echo(f"Error: {one_line(message)}", err=True)
    return typer.Exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not a UTF-8 text file ({exc.reason})"
    return str(exc) or type(exc).__name__


def guard(fn: F) -> F:
    """Command boundary: user errors become a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import KBLaMError

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except CLIError as exc:
            raise fail(exc) from None
        except KBLaMError as exc:
            raise fail(exc) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise fail(_describe(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Exception as exc:  # noqa: BLE001 - the boundary: no traceback for the user
            if os.environ.get("KBLAM_DEBUG"):
                raise
            raise fail(f"{type(exc).__name__}: {exc} (set KBLAM_DEBUG=1 for the traceback)") from None

    return wrapper  # type: ignore[return-value]


class KBLaMGroup(TyperGroup):
    """Turns usage errors (click's exit 2 and boxed message) into one line and exit code 1."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: ANN001
        no_args_help = getattr(_click_exc, "NoArgsIsHelpError", ())
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                              **extra)
        except no_args_help as exc:  # `kblam` / `kblam kb` alone: the help, not an error
            typer.echo(exc.format_message())
            rv = 0
        except _click_exc.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            typer.echo(f"Error: {one_line(exc.format_message())}{hint}", err=True)
            rv = 1
        except typer.TyperException as exc:
            typer.echo(f"Error: {one_line(exc.format_message())}", err=True)
            rv = 1
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            rv = 1
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code
