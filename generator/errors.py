"""One error hierarchy for helm-mlops. The CLI maps it to exit codes in one place (cli.main)."""

from __future__ import annotations


class HelmMlopsError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = 1


class UserError(HelmMlopsError):
    """Bad input: a value, option or file the user can fix. Exit code 2.

    ``field`` names what to change and ``hint`` how; both are shown to the user.
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        if self.field:
            text = f"{self.field}: {text}"
        if self.hint:
            text = f"{text}\n  fix: {self.hint}"
        return text


class ToolError(HelmMlopsError):
    """An external tool (helm, kubectl, ...) failed or is missing. Exit code 3."""

    exit_code = 3


class Interrupted(HelmMlopsError):
    """Stopped by Ctrl-C or SIGTERM while a tool was changing something. Exit code 130."""

    exit_code = 130


class StaleError(HelmMlopsError):
    """A generated file differs from what would be generated now (``--check``). Exit code 4."""

    exit_code = 4
