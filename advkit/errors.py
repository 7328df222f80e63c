"""The one exception a user mistake raises: the CLI turns it into one line and exit code 2."""

import difflib


class UserError(Exception):
    """A problem with the user's input (file, flag, recipe, model path), not a bug."""


def closest(name: str, known) -> str:
    """' (did you mean X?)' for the nearest known name, or '' when nothing is near."""
    match = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
