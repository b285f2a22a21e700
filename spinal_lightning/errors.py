"""Errors a user can fix from the config or the data, and how the CLI prints them."""

from __future__ import annotations


class SpinalLightningError(Exception):
    """Base of the errors that come from user input (config values, data files) rather than bugs."""


class DataNotFoundError(SpinalLightningError, FileNotFoundError):
    """The data set was not found in any of the places looked in, and downloading is off."""


class CorruptDataError(SpinalLightningError, ValueError):
    """A data file exists but cannot be read as the expected format."""


class ConfigMismatchError(SpinalLightningError, ValueError):
    """The model and the data disagree on a size, such as the number of classes."""


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def is_user_error(error: BaseException) -> bool:
    """Tell whether ``error`` (or an error it wraps) was raised for invalid user input.

    Besides this project's own errors, a ``ValueError`` or ``TypeError`` raised while the CLI
    instantiates the classes from the config counts, since that is how the heads, backbones and
    datamodules reject invalid arguments.
    """
    return any(isinstance(cause, (SpinalLightningError, ValueError, TypeError, FileNotFoundError)) for cause in _chain(error))


def format_user_error(error: BaseException) -> str:
    """Return the innermost user-facing message of ``error`` as one paragraph."""
    message = None
    for cause in _chain(error):
        if isinstance(cause, SpinalLightningError):
            message = str(cause)
            break
    if message is None:
        message = str(list(_chain(error))[-1])
    return (
        f"error: {message}\n(Set SPINAL_LIGHTNING_TRACEBACK=1 to see the full traceback.)"
    )
