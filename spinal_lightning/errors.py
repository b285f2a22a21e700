"""Errors a user can fix from the config or the data, and how the CLI prints them."""

from __future__ import annotations

from argparse import ArgumentError

from lightning.pytorch.utilities.exceptions import MisconfigurationException


class SpinalLightningError(Exception):
    """Base of the errors that come from user input (config values, data files) rather than bugs."""


class DataNotFoundError(SpinalLightningError, FileNotFoundError):
    """The data set was not found in any of the places looked in, and downloading is off."""


class CorruptDataError(SpinalLightningError, ValueError):
    """A data file exists but cannot be read as the expected format."""


USER_ERROR_TYPES = (
    SpinalLightningError,
    ValueError,
    TypeError,
    FileNotFoundError,
    ArgumentError,
    MisconfigurationException,
)


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
    datamodules reject invalid arguments. So do jsonargparse's ``ArgumentError`` (unknown keys,
    wrong types; the CLI turns off its print-usage-and-exit) and Lightning's
    ``MisconfigurationException`` (invalid trainer and callback settings).
    """
    return any(isinstance(cause, USER_ERROR_TYPES) for cause in _chain(error))


def format_user_error(error: BaseException) -> str:
    """Return the innermost user-facing message of ``error`` as one paragraph."""
    message = None
    for cause in _chain(error):
        # jsonargparse's own message names the config key or file; the errors it wraps do not.
        if isinstance(cause, (SpinalLightningError, ArgumentError)):
            message = str(cause)
            break
    if message is None:
        message = str(list(_chain(error))[-1])
    # jsonargparse messages span several indented lines; the report is one paragraph.
    message = " ".join(message.split())
    if any(isinstance(cause, ArgumentError) for cause in _chain(error)):
        message = message if message.endswith(".") else message + "."
        message += " Run the same command with --help to list the accepted options."
    return (
        f"error: {message}\n(Set SPINAL_LIGHTNING_TRACEBACK=1 to see the full traceback.)"
    )


class CheckpointError(SpinalLightningError, ValueError):
    """A checkpoint cannot be written, read, or applied to the configured model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path given to ``--ckpt_path`` does not exist."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the configured model (another backbone, head or class count)."""


class TrainingDivergedError(SpinalLightningError, ArithmeticError):
    """The training loss became NaN or infinite."""
