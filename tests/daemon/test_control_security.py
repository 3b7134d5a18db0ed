"""Who may talk to the control API: the socket's mode and group from its creation on, the
peer's credentials logged for every write, the bearer token's file, and maglevc's refusal to
pretend it speaks TLS."""

from __future__ import annotations

import grp
import logging
import os
import pathlib
import socket
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from maglev.cli.client import ControlClient, ControlError, cleartext_risk, is_loopback, parse_url
from maglev.cli.maglevc import cli
from maglev.daemon.control import ControlServer, TokenFileError, read_token_file
from maglev.daemon.runtime import Settings, run
from tests.daemon.test_control import Recorder, raw

pytestmark = pytest.mark.integration


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # a usual umask: a socket bound with it is 0755
    yield
    os.umask(old)


def other_group() -> grp.struct_group | None:
    """A group this process may give a file that is not its own primary group."""
    gids = [g.gr_gid for g in grp.getgrall()] if os.geteuid() == 0 else os.getgroups()
    for gid in gids:
        if gid != os.getegid():
            return grp.getgrgid(gid)
    return None


def test_the_socket_has_its_mode_and_group_before_it_listens(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    path = tmp_path / "run" / "ctl.sock"
    group = other_group()
    seen: list[dict[str, Any]] = []
    listen = socket.socket.listen

    def watched(self: socket.socket, *args: Any) -> None:
        if self.family == socket.AF_UNIX:
            bound = self.getsockname()
            st = os.stat(bound)
            seen.append(
                {
                    "mode": stat.S_IMODE(st.st_mode),
                    "gid": st.st_gid,
                    "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(bound)).st_mode),
                    "final_exists": bound != str(path) and path.exists(),
                    "bound": bound,
                }
            )
        listen(self, *args)

    monkeypatch.setattr(socket.socket, "listen", watched)
    srv = ControlServer(
        Recorder(), str(path), socket_mode=0o640, socket_group=group.gr_name if group else None
    )
    try:
        assert len(seen) == 1
        at_listen = seen[0]
        assert at_listen["mode"] == 0o640  # not 0755 from the umask
        if group is not None:
            assert at_listen["gid"] == group.gr_gid
        if at_listen["bound"] != str(path):  # bound elsewhere first: a private directory
            assert at_listen["dir_mode"] == 0o700 and not at_listen["final_exists"]
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
        if group is not None:
            assert st.st_gid == group.gr_gid
        assert sorted(os.listdir(path.parent)) == ["ctl.sock"]  # nothing left behind
    finally:
        srv.stop()
    assert not path.exists()


def test_a_stale_socket_is_replaced_and_only_our_own_removed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ctl.sock"
    path.write_text("stale")
    first = ControlServer(Recorder(), str(path))
    first.start()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert raw(str(path), b"GET /v1/version HTTP/1.1\r\n\r\n")[0] == 200
    second = ControlServer(Recorder(), str(path))  # a newer daemon took the path over
    first.stop()
    assert path.exists()  # the newer one's socket stays
    second.stop()
    assert not path.exists()


def test_write_requests_are_logged_with_the_peers_credentials(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "ctl.sock")
    srv = ControlServer(Recorder(), path)
    srv.start()
    c = ControlClient(path)
    caplog.set_level(logging.INFO, logger="maglev.daemon")
    try:
        c.request("GET", "/v1/status")
        c.request("POST", "/v1/sync")
        c.request("PUT", "/v1/frontends/www/pools/p/backends/b/weight", {"weight": 3})
        c.request("DELETE", "/v1/frontends/www/pools/p/backends/b/weight")
        with pytest.raises(ControlError):
            c.request("POST", "/v1/backends/web1/explode")
        raw(path, b"POST /v1/sync HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}")
        give_up = time.monotonic() + 30  # each connection's thread logs after its reply
        while sum(r.levelno == logging.INFO for r in caplog.records) < 5:
            assert time.monotonic() < give_up, "not every write request was logged in 30 s"
            time.sleep(0.005)
    finally:
        srv.stop()
    who = f"uid {os.getuid()} gid {os.getgid()} pid {os.getpid()}"
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    # Each line is written by its connection's thread after the reply went out, so the client
    # may be on its next request before it: the lines, in any order.
    assert sorted(lines) == sorted([
        f"control 'POST' '/v1/sync' from {who}: 200",
        f"control 'PUT' '/v1/frontends/www/pools/p/backends/b/weight' from {who}: 200",
        f"control 'DELETE' '/v1/frontends/www/pools/p/backends/b/weight' from {who}: 200",
        f"control 'POST' '/v1/backends/web1/explode' from {who}: 404",
        f"control 'POST' '/v1/sync' from {who}: 400",
    ])  # fmt: skip


# --- the token file ----------------------------------------------------------------------------


def token_file(tmp: pathlib.Path, text: str, mode: int) -> str:
    p = tmp / "token"
    p.write_text(text)
    os.chmod(p, mode)
    return str(p)


def test_a_private_token_file_is_read(tmp_path: pathlib.Path) -> None:
    assert read_token_file(token_file(tmp_path, "s3cret\n", 0o600)) == "s3cret"
    assert read_token_file(token_file(tmp_path, "s3cret", 0o400)) == "s3cret"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660, 0o666, 0o601])
def test_a_token_file_others_may_read_or_write_is_refused(
    tmp_path: pathlib.Path, mode: int
) -> None:
    path = token_file(tmp_path, "s3cret\n", mode)
    with pytest.raises(TokenFileError) as e:
        read_token_file(path)
    assert str(e.value) == (
        f"control.token-file {path}: mode {mode:04o} lets its group or others read or write "
        f"it; make it private to maglevd's user (chmod 600 {path})"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the file is empty"), (" \n\n", "the file is empty"),
     ("two words", "the token must be one line"), ("tökén", "the token must be one line"),
     ("x" * 2000, "the token must be one line")],
)  # fmt: skip
def test_an_unusable_token_is_refused(tmp_path: pathlib.Path, text: str, message: str) -> None:
    path = token_file(tmp_path, text, 0o600)
    with pytest.raises(TokenFileError, match=f"^control.token-file {path}: {message}"):
        read_token_file(path)


def test_a_missing_token_file_or_a_directory_is_refused(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(TokenFileError, match=f"^control.token-file {missing}: No such file"):
        read_token_file(str(missing))
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(TokenFileError, match="not a regular file"):
        read_token_file(str(tmp_path / "dir"))


DAEMON = """
vpp: {{api-socket: embedded, lb: {{ip4-src-address: 198.51.100.1}}}}
backends: {{s1: {{address: 127.0.0.41}}}}
frontends:
  f: {{address: 192.0.2.41, protocol: tcp, port: 80, encap: gre4, pools: [{{name: p, backends: {{s1: {{}}}}}}]}}
control: {{socket: {ctl}, tcp-listen: "127.0.0.1:0", token-file: {token}}}
"""


def test_the_daemon_refuses_a_readable_token_file_without_a_traceback(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = token_file(tmp_path, "s3cret\n", 0o644)
    ctl = tmp_path / "ctl.sock"
    cfg = tmp_path / "maglev.yaml"
    cfg.write_text(DAEMON.format(ctl=ctl, token=token))
    caplog.set_level(logging.INFO)
    threads = set(threading.enumerate())
    assert run(Settings(str(cfg))) == 1
    assert f"maglevd refuses to start: control.token-file {token}: mode 0644" in caplog.text
    assert "Traceback" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)
    # refused before anything started: no thread, no emulator, no lock left behind
    assert set(threading.enumerate()) == threads
    assert "starting" not in caplog.text
    assert not (tmp_path / "ctl.sock.lock").exists()
    assert not ctl.exists()


# --- maglevc and TLS ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "env"])
def test_maglevc_refuses_https(how: str) -> None:
    args, env = (["--url", "https://127.0.0.1:9901"], {}) if how == "option" else ([], {"MAGLEV_URL": "https://127.0.0.1:9901"})  # fmt: skip
    r = CliRunner().invoke(cli, [*args, "show", "status"], env=env)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.startswith("maglevc: --url https://127.0.0.1:9901: maglevd serves plain HTTP")
    assert "no TLS" in r.stderr and "ssh -L" in r.stderr and "TLS-terminating proxy" in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_maglevc_warns_before_sending_a_token_in_cleartext(tmp_path: pathlib.Path) -> None:
    tok = token_file(tmp_path, "s3cret", 0o600)
    args = ["--url", "http://192.0.2.1:9", "--token-file", tok, "--timeout", "0.2"]
    r = CliRunner().invoke(cli, [*args, "show", "status"])
    assert r.exit_code == 1  # nothing listens there
    first, *rest = r.stderr.splitlines()
    assert first.startswith("maglevc: warning: the bearer token goes to 192.0.2.1 in cleartext")
    assert rest[0].startswith("maglevc: cannot reach maglevd at http://192.0.2.1:9")


def test_maglevc_sends_a_token_to_loopback_without_a_warning(tmp_path: pathlib.Path) -> None:
    srv = ControlServer(Recorder(), None, tcp_listen="127.0.0.1:0", token="s3cret")
    srv.start()
    try:
        assert srv.tcp_address is not None
        url = "http://{}:{}".format(*srv.tcp_address)
        tok = token_file(tmp_path, "s3cret", 0o600)
        r = CliRunner().invoke(cli, ["--url", url, "--token-file", tok, "show", "version"])
    finally:
        srv.stop()
    assert (r.exit_code, r.stderr) == (0, "")
    assert "9.9" in r.stdout


@pytest.mark.parametrize(
    ("url", "address"),
    [("http://127.0.0.1:9901", ("127.0.0.1", 9901)), ("127.0.0.1:9901", ("127.0.0.1", 9901)),
     ("http://[::1]:9901/", ("::1", 9901)), ("http://maglev.example", ("maglev.example", 80))],
)  # fmt: skip
def test_control_urls(url: str, address: tuple[str, int]) -> None:
    assert parse_url(url) == address


@pytest.mark.parametrize(
    "url", ["ftp://h:1", "http://h:99999", "http://h:1/prefix", "http://:1", "http://h:x"]
)
def test_bad_control_urls(url: str) -> None:
    with pytest.raises(ControlError, match=r"expected http://HOST:PORT"):
        parse_url(url)


def test_what_counts_as_loopback() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.3.2.1", "::1", "localhost", "a.localhost"]))
    assert not any(map(is_loopback, ["10.0.0.1", "192.0.2.1", "::ffff:10.0.0.1", "example.com"]))
    assert cleartext_risk("http://10.0.0.1:1", None) is None  # no token, nothing to leak
    assert cleartext_risk("http://127.0.0.1:1", "t") is None
    assert cleartext_risk("http://10.0.0.1:1", "t") is not None
