"""Config loading: YAML -> validated, frozen `maglev.model.Config`.

`load_file` / `load_text` raise `ConfigError` when the file cannot be read or parsed and
`ConfigInvalid` (carrying every problem, each with its key path) when it parses but is wrong.
`diff_configs` compares two loaded configs for reload logging.
"""

from __future__ import annotations

from maglev.config.changes import ConfigDiff, NamedChanges, diff_configs, restart_only_changes
from maglev.config.fields import parse_duration
from maglev.config.loader import load_file, load_text

__all__ = [
    "ConfigDiff",
    "NamedChanges",
    "diff_configs",
    "load_file",
    "load_text",
    "parse_duration",
    "restart_only_changes",
]
