"""maglev's error hierarchy: one small tree, so callers can catch by layer.

User mistakes (config, API requests, CLI arguments) become errors with clear messages; a
Python traceback is reserved for bugs.
"""

from __future__ import annotations

from dataclasses import dataclass


class MaglevError(Exception):
    """Base of every error maglev raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One config problem: where (dotted key path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(MaglevError):
    """The config file could not be read or parsed (exit code 1 of check-config)."""


class ConfigInvalid(MaglevError):
    """The config parsed but is semantically invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RequestError(MaglevError):
    """A request (API call, operator action) that cannot be carried out as asked."""


class NotFound(RequestError):
    """The request names a frontend, pool or backend that does not exist."""


class InvalidRequest(RequestError):
    """The request is malformed or a value is out of range."""


class VppError(MaglevError):
    """Talking to VPP failed (connection, transport, or a bad reply)."""


class VppApiError(VppError):
    """VPP answered a request with a non-zero retval."""

    def __init__(self, message: str, retval: int, args: dict[str, object] | None = None) -> None:
        self.message_name = message
        self.retval = retval
        self.call_args = dict(args or {})
        super().__init__(f"{message} failed: retval {retval} ({retval_name(retval)}) args={args}")


_RETVALS = {
    0: "ok",
    -2: "INVALID_SW_IF_INDEX",
    -6: "NO_SUCH_ENTRY",
    -7: "INVALID_VALUE",
    -70: "INVALID_MEMORY_SIZE",
    -73: "INVALID_ARGUMENT",
    -81: "VALUE_EXIST",
    -97: "INVALID_ADDRESS_FAMILY",
}


def retval_name(retval: int) -> str:
    return _RETVALS.get(retval, "unknown")
