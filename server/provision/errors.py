"""The one error of `venuewatch provision`, shared by all its modules."""

from __future__ import annotations


class ProvisionError(ValueError):
    """Bad input or a file that cannot be used: one line naming the file or option and the fix."""
