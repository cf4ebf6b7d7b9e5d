"""User-facing errors.

The core raises these and never prints or exits; ``cli.py`` turns each into a
one-line message and the exit code named on the class.
"""

from __future__ import annotations


class PhotosearchError(Exception):
    """Base class for every error a user should see as one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PhotosearchError):
    """A bad option value or argument combination."""

    exit_code = 2


class InputError(PhotosearchError):
    """A missing, unreadable or undecodable input file or folder."""

    exit_code = 3


class ModelError(PhotosearchError):
    """No usable model, or a model that fails to load, convert or verify."""

    exit_code = 4


class NetworkError(ModelError):
    """A download was needed but the network (or the model hub) is unreachable."""


class DeviceError(ModelError):
    """The asked-for inference device cannot be used (no CUDA provider, no GPU, libraries missing)."""


class LibraryError(PhotosearchError):
    """The library folder is unwritable, locked, or in a format we cannot read."""

    exit_code = 5


class NotIndexedError(PhotosearchError):
    """The library has nothing to search yet (or nothing for the active model)."""

    exit_code = 6


class Interrupted(PhotosearchError):
    """The user stopped a command (Ctrl-C); what was committed is kept and the message says so."""

    exit_code = 130


class DecodeError(Exception):
    """An image could not be decoded; the indexer records ``reason`` and skips it.

    Not a PhotosearchError: it never reaches the user as a failure of a command,
    only as a line in the index summary (or wrapped in InputError by callers).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
