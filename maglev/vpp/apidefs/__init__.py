"""maglev's own binary-API definitions and the `.api.json` files vpp-papi loads.

`api_files()` picks the host's VPP definitions when installed and otherwise the bundled ones,
which `generate()` renders from `maglev.vpp.apidefs.definitions` into a cache directory. `MODULES`
and `MESSAGES` give the same definitions in typed form (the emulator encodes and builds its
message table from them). Called from whichever thread builds a VPP client or starts the
emulator; generation is idempotent and atomic, so concurrent callers are safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import tempfile
from typing import Final

from maglev.vpp.apidefs.schema import (
    AliasDef,
    EnumDef,
    FieldDef,
    MessageDef,
    ModuleDef,
    StructDef,
    build_modules,
)

__all__ = [
    "DEFAULT_API_DIR",
    "MESSAGES",
    "MODULES",
    "AliasDef",
    "EnumDef",
    "FieldDef",
    "MessageDef",
    "ModuleDef",
    "StructDef",
    "api_files",
    "bundled_api_files",
    "generate",
]

log = logging.getLogger(__name__)

DEFAULT_API_DIR: Final = "/usr/share/vpp/api"
# The host files maglev needs: handshake and ping, show_version, cli_inband, lb. Loading only
# these (not the hundreds a VPP installs) keeps vpp-papi's start-up fast; imported types are
# inlined in each file, so they are self-contained.
HOST_MODULES: Final = ("memclnt", "vlib", "vpe", "lb")

MODULES: Final[tuple[ModuleDef, ...]] = build_modules()
MESSAGES: Final[dict[str, MessageDef]] = {m.name: m for mod in MODULES for m in mod.messages}


def _render() -> dict[str, str]:
    return {mod.filename: json.dumps(mod.to_json(), indent=1) + "\n" for mod in MODULES}


def _cache_root() -> pathlib.Path:
    env = os.environ.get("MAGLEV_APIDEFS_CACHE")
    if env:
        return pathlib.Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache"
    return base / "maglev" / "vpp-api"


def generate(cache_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Write the bundled definitions as `.api.json` files and return their paths.

    The files land in `<cache_dir>/<digest>/{core,plugins}/` where digest hashes their content, so
    a new maglev version never reads stale files. Existing files are reused.
    """
    rendered = _render()
    digest = hashlib.sha256("".join(k + v for k, v in sorted(rendered.items())).encode())
    roots = [pathlib.Path(cache_dir)] if cache_dir is not None else [_cache_root()]
    if cache_dir is None:
        roots.append(pathlib.Path(tempfile.gettempdir()) / f"maglev-vpp-api-{os.getuid()}")
    err: OSError | None = None
    for root in roots:
        target = root / digest.hexdigest()[:16]
        try:
            return [_write(target / name, text) for name, text in rendered.items()]
        except OSError as e:
            log.debug("cannot write API definitions under %s: %s", target, e)
            err = e
    assert err is not None
    raise err


def _write(path: pathlib.Path, text: str) -> str:
    if path.is_file() and path.read_text() == text:
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def bundled_api_files(cache_dir: str | os.PathLike[str] | None = None) -> list[str]:
    return generate(cache_dir)


def _host_files(api_dir: str) -> list[str]:
    found: dict[str, str] = {}
    for root, _dirs, files in os.walk(api_dir):
        for name in files:
            module = name.removesuffix(".api.json")
            if name.endswith(".api.json") and module in HOST_MODULES:
                found.setdefault(module, os.path.join(root, name))
    if "lb" not in found:
        return []
    return [found[m] for m in HOST_MODULES if m in found]


def api_files(api_dir: str | None = None) -> list[str]:
    """The definition files to give `VPPApiClient(apifiles=...)`.

    The host's files from `api_dir` (default `/usr/share/vpp/api`) when that directory holds
    `lb.api.json`, else the bundled ones (generated on first use).
    """
    directory = api_dir if api_dir is not None else DEFAULT_API_DIR
    if os.path.isdir(directory):
        files = _host_files(directory)
        if files:
            log.debug("using host API definitions from %s", directory)
            return files
    if api_dir is not None:
        log.warning("no lb.api.json under %s; using maglev's bundled API definitions", api_dir)
    return generate()
