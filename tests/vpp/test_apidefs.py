"""The bundled API definitions: identical to a real VPP 26.10's, and loadable by vpp-papi."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from maglev.vpp import apidefs


def _strip(entry: list[Any]) -> list[Any]:
    """A JSON message/type entry without its trailing comment/options dict (CRC kept)."""
    out = []
    for item in entry:
        if isinstance(item, dict) and ("crc" in item or "comment" in item or not item):
            crc = item.get("crc")
            if crc:
                out.append({"crc": crc})
            continue
        out.append(item)
    return out


def _real(shared: pathlib.Path, module: apidefs.ModuleDef) -> dict[str, Any]:
    with open(shared / "vpp-api" / module.filename) as f:
        data: dict[str, Any] = json.load(f)
    return data


@pytest.mark.shared
@pytest.mark.parametrize("module", apidefs.MODULES, ids=lambda m: m.name)
def test_bundled_module_matches_real_vpp(
    shared_dir: pathlib.Path, module: apidefs.ModuleDef
) -> None:
    real = _real(shared_dir, module)
    ours = module.to_json()
    assert ours["vl_api_version"] == real["vl_api_version"]
    assert ours["options"]["version"] == real["options"]["version"]
    assert ours["imports"] == real["imports"]
    real_msgs = {m[0]: _strip(m) for m in real["messages"]}
    order = [m[0] for m in real["messages"]]
    for msg in module.messages:
        assert _strip(msg.to_json()) == real_msgs[msg.name], msg.name
        # The message's place in the module decides its ID offset.
        assert order.index(msg.name) == msg.offset, msg.name
    assert len(real["messages"]) == module.msg_count
    for kind in ("types", "unions", "enums"):
        real_items = {t[0]: _strip(t) for t in real[kind]}
        for item in ours[kind]:
            assert _strip(item) == real_items[item[0]], (kind, item[0])
    for name, alias in ours["aliases"].items():
        assert alias == real["aliases"][name], name
    for req, svc in ours["services"].items():
        assert svc == real["services"][req], req


@pytest.mark.shared
def test_every_real_lb_message_is_bundled(shared_dir: pathlib.Path) -> None:
    lb = next(m for m in apidefs.MODULES if m.name == "lb")
    real = _real(shared_dir, lb)
    assert [m[0] for m in real["messages"]] == [m.name for m in lb.messages]
    memclnt = next(m for m in apidefs.MODULES if m.name == "memclnt")
    real = _real(shared_dir, memclnt)
    assert [m[0] for m in real["messages"]] == [m.name for m in memclnt.messages]


def test_generated_files_load_in_vpp_papi(tmp_path: pathlib.Path) -> None:
    from vpp_papi.vpp_papi import VPPApiJSONFiles

    files = apidefs.generate(tmp_path)
    assert sorted(pathlib.Path(f).relative_to(tmp_path).parts[1:] for f in files) == [
        ("core", "memclnt.api.json"),
        ("core", "vlib.api.json"),
        ("core", "vpe.api.json"),
        ("plugins", "lb.api.json"),
    ]
    _files, messages, services = VPPApiJSONFiles.load_api(apifiles=files)
    assert messages["lb_as_set_weight"].crc == "0x2d89bdbd"
    assert services["lb_as_v2_dump"] == {"reply": "lb_as_v2_details", "stream": True}
    # Packing through papi's serializer gives the documented 51-byte layout.
    raw = messages["lb_add_del_as_v2"].pack(
        {
            "_vl_msg_id": 0,
            "client_index": 0x80000001,
            "context": 9,
            "pfx": "10.0.0.1/32",
            "protocol": 6,
            "port": 80,
            "as_address": "2001:db8::1",
            "weight": 50,
        }
    )
    assert raw.hex() == (
        "0000800000010000000900" + "0a000001" + "00" * 12 + "20" + "06" + "0050"
        "01" + "20010db8000000000000000000000001" + "32" + "00" + "00"
    )
    # Regenerating is idempotent: same paths, same content.
    assert apidefs.generate(tmp_path) == files


def test_api_files_prefers_host_dir_with_lb(tmp_path: pathlib.Path) -> None:
    host = tmp_path / "host"
    (host / "plugins").mkdir(parents=True)
    (host / "core").mkdir()
    (host / "plugins" / "lb.api.json").write_text("{}")
    (host / "core" / "memclnt.api.json").write_text("{}")
    (host / "core" / "ip.api.json").write_text("{}")
    files = apidefs.api_files(str(host))
    assert files == [str(host / "core" / "memclnt.api.json"), str(host / "plugins" / "lb.api.json")]


def test_api_files_falls_back_to_bundled(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAGLEV_APIDEFS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    files = apidefs.api_files(str(tmp_path / "empty"))
    assert len(files) == 4
    assert all(f.startswith(str(tmp_path / "cache")) for f in files)


def test_api_files_default_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGLEV_APIDEFS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(apidefs, "DEFAULT_API_DIR", str(tmp_path / "absent"))
    assert all(f.startswith(str(tmp_path / "cache")) for f in apidefs.api_files())
    host = tmp_path / "host" / "plugins"
    host.mkdir(parents=True)
    (host / "lb.api.json").write_text("{}")
    monkeypatch.setattr(apidefs, "DEFAULT_API_DIR", str(tmp_path / "host"))
    assert apidefs.api_files() == [str(host / "lb.api.json")]
