"""The exceptions a user can cause. The CLI prints each as one line and exits 2, or 130 for
an interrupt."""


class UserError(Exception):
    """Bad option, missing or corrupt data, unreachable storage: says what was expected."""


class OptionError(UserError, ValueError):
    """A value out of range, named by its field (of `RunOptions`, `Protocol`): the library
    knows fields, the CLI names the option that set the field instead."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class StorageFailed(UserError):
    """The storage failed mid-run (lost past the grace period, or an error no wait cures):
    nothing more can be written to it, the requeue of the trials in flight included."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, handled: the message says what became of the work in flight."""
