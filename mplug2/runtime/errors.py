"""The one error a fast runtime raises when it cannot serve: the caller falls back to torch and says why."""

from __future__ import annotations


class RuntimeUnavailable(RuntimeError):
    """A runtime is not installed, cannot export this model, or does not run on this CPU; the message says which."""
