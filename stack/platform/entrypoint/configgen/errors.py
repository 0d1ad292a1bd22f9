"""The two ways a command can fail, each with its exit code (see `configgen --help`)."""


class ConfiggenError(Exception):
    """A problem to report to the user as one line, without a traceback.

    `details` are lines printed before it, such as the end of a failed process's log.
    """

    exit_code = 2

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class UsageError(ConfiggenError):
    """Bad input: a wrong argument, stack file, htpasswd file or password. Exit code 2."""

    exit_code = 2


class CheckFailed(ConfiggenError):
    """A check found problems (drift, a wrong password, an invalid bundle). Exit code 1."""

    exit_code = 1


class StackFailed(ConfiggenError):
    """The stack could not start, or stopped working. Exit code 1."""

    exit_code = 1
