"""The one root of forcecast's exceptions, with stable reason codes and the exit status of each.

Every exception class of ours derives from :class:`ForcecastError`, so a caller can catch everything
forcecast raises on purpose in one clause, and the command line maps exceptions to exit statuses by type
(never by class name). Most also derive from a built-in through the mixins below, so callers that catch by
meaning keep working: ``except ValueError`` still catches a bad package, ``except RuntimeError`` a missing
sensor.

Attributes of every class:

``reason``
    A stable, machine-readable code (``snake_case``). Some classes set it per instance (a refused package
    says *why*: ``bad_signature``, ``untrusted_key``...); the class value is then the default. Reasons travel
    on the wire and into JSON output: never rename one.
``exit_code``
    The ``forcecast`` command's exit status when the exception ends a command: 2 for input or configuration
    that cannot be used (the default), 1 for a refusal or a verdict (a package that failed its checks,
    a quantised model that lost too much accuracy, a device that said no).

Only the standard library is imported here (the device installs this module).
"""

from __future__ import annotations

# Exit statuses of the ``forcecast`` command (see README "Command line").
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_UNEXPECTED = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class ForcecastError(Exception):
    """Root of every exception forcecast raises on purpose.

    Attributes
    ----------
    reason
        Stable code for machines (class default; an instance may carry a more precise one).
    exit_code
        Exit status of the ``forcecast`` command ended by this exception.
    """

    reason: str = "forcecast_error"
    exit_code: int = EXIT_BAD_INPUT

    def report_lines(self) -> list[str]:
        """What the command line prints about this error: one line by default.

        Returns
        -------
        list[str]
            The first line is printed after ``forcecast COMMAND: error:``; further lines are indented below it.
        """
        return [str(self) or self.reason]


class ForcecastValueError(ForcecastError, ValueError):
    """Input that cannot be used: a file, a value, a packet, a configuration (still a ``ValueError``)."""

    reason = "invalid_value"


class ForcecastRuntimeError(ForcecastError, RuntimeError):
    """Something the command needs failed or is missing: a sensor, a runtime, a store (still a ``RuntimeError``)."""

    reason = "runtime_failure"


class UsageError(ForcecastValueError):
    """The command line itself is wrong in a way argparse cannot tell (two spellings of one argument, none)."""

    reason = "usage"


class OutputExistsError(ForcecastError, FileExistsError):
    """An output folder or file already holds something, and ``--force`` was not given (still a ``FileExistsError``)."""

    reason = "output_exists"
