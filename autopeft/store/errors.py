"""The one exception of the study store."""

from __future__ import annotations


class StudyError(ValueError):
    """A study or storage problem the user can fix; the message is one line."""
