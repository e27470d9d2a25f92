"""The one exception a user can cause; the CLI prints its message as one line and exits 2."""


class UserError(Exception):
    """Bad option, missing or corrupt data, unreachable storage: says what was expected."""
