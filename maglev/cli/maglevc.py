"""`maglevc`: the operator CLI (click). Talks to a running maglevd over its control API.

Commands may be abbreviated to any unique prefix (`maglevc sh fr` = `maglevc show frontends`).
Human tables by default, `--json` for scripts; errors are one line on stderr with exit code 1.
Shell completion: `eval "$(_MAGLEVC_COMPLETE=bash_source maglevc)"` (zsh_source, fish_source).
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from maglev import __version__
from maglev.cli.change import config, set_
from maglev.cli.client import ControlClient, ControlError, cleartext_risk, q
from maglev.cli.context import Ctx, PrefixGroup, pass_ctx
from maglev.cli.context import fail as _fail
from maglev.cli.explain import explain
from maglev.cli.overrides import overrides_table, show_overrides
from maglev.cli.tables import budget_text, guard_text, render_kv, render_table, status_text

DEFAULT_SOCKET = "/run/maglev/maglevd.sock"


@click.group(cls=PrefixGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maglevc")
@click.option(
    "--socket", "socket_path", envvar="MAGLEV_SOCKET", default=DEFAULT_SOCKET, show_default=True,
    help="maglevd control socket (env MAGLEV_SOCKET).",
)  # fmt: skip
@click.option(
    "--url",
    envvar="MAGLEV_URL",
    help="Control API over TCP, e.g. http://127.0.0.1:9901 (plain HTTP: maglevd serves no TLS).",
)
@click.option("--token-file", envvar="MAGLEV_TOKEN_FILE", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for maglevd.")
@click.pass_context
def cli(
    ctx: click.Context,
    socket_path: str,
    url: str | None,
    token_file: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Operate a running maglevd."""
    token = os.environ.get("MAGLEV_TOKEN")
    if token_file:
        try:
            with open(token_file) as f:
                token = f.read().strip()
        except OSError as e:
            _fail(f"--token-file {token_file}: {e.strerror}")
    try:
        client = ControlClient(socket_path, url, token, timeout)
        warning = cleartext_risk(url, token)
    except ControlError as e:
        _fail(str(e))
    if warning:
        click.echo(f"maglevc: {warning}", err=True)
    ctx.obj = Ctx(client, as_json)


# --- show --------------------------------------------------------------------------------


@cli.group(cls=PrefixGroup)
def show() -> None:
    """Show daemon, frontend, backend, healthcheck and VPP state."""


@show.command("version")
@pass_ctx
def show_version(c: Ctx) -> None:
    c.out(c.call("GET", "/v1/version"))


@show.command("status")
@pass_ctx
def show_status(c: Ctx) -> None:
    c.out(c.call("GET", "/v1/status"), status_text)


def _frontends_table(rows: list[dict[str, Any]]) -> str:
    return render_table(
        ["FRONTEND", "ADDRESS", "PROTO", "PORT", "ENCAP", "STATE", "ACTIVE POOL", "UP/TOTAL",
         "GUARD"],
        [
            [
                r["name"], r["address"], r["protocol"], r["port"], r["encap"], r["state"],
                r.get("active_pool") or "-",
                f"{sum(1 for b in r['backends'] if b['state'] == 'up')}/{len(r['backends'])}",
                r["guard"]["mode"] if r.get("guard", {}).get("active") else "-",
            ]
            for r in rows
        ],
    )  # fmt: skip


def _frontend_detail(r: dict[str, Any]) -> str:
    head = {
        k: r[k] for k in ("name", "address", "protocol", "port", "encap", "state", "active_pool")
    }
    if r.get("guard"):
        head["guard"] = guard_text(r["guard"])
    if r.get("budget"):
        head["budget"] = budget_text(r["budget"])
    table = render_table(
        ["POOL", "BACKEND", "ADDRESS", "STATE", "WEIGHT", "EFFECTIVE", "WHY"],
        [
            [b["pool"], b["name"], b["address"], b["state"], b["configured_weight"],
             b["effective_weight"], b["reason"]]
            for b in r["backends"]
        ],
    )  # fmt: skip
    out = render_kv(head) + "\n\n" + table
    if r.get("operator_state"):
        out += "\n\noperator state:\n" + overrides_table(r["operator_state"])
    return out


@show.command("frontends")
@pass_ctx
def show_frontends(c: Ctx) -> None:
    c.out(c.call("GET", "/v1/frontends"), _frontends_table)


@show.command("frontend")
@click.argument("name")
@pass_ctx
def show_frontend(c: Ctx, name: str) -> None:
    c.out(c.call("GET", f"/v1/frontends/{q(name)}"), _frontend_detail)


def _backends_table(rows: list[dict[str, Any]]) -> str:
    def last(r: dict[str, Any]) -> str:
        p = r.get("last_probe")
        return f"{p['reason']} {p['detail']}" if p else "-"

    return render_table(
        ["BACKEND", "ADDRESS", "HEALTHCHECK", "STATE", "ENABLED", "LAST PROBE"],
        [
            [
                r["name"],
                r["address"],
                r.get("healthcheck") or "-",
                f"{r['state']} (suppressed)"
                if (r.get("damping") or {}).get("suppressed")
                else r["state"],
                r["enabled"],
                last(r),
            ]
            for r in rows
        ],
    )


def _backend_detail(r: dict[str, Any]) -> str:
    skip = ("transitions", "last_probe", "damping", "operator_state")
    head = {k: v for k, v in r.items() if k not in skip}
    out = render_kv(head)
    if r.get("operator_state"):
        out += "\n\noperator state:\n" + overrides_table(r["operator_state"])
    if r.get("damping"):
        out += "\n\nflap damping:\n" + render_kv(r["damping"], indent=2)
    if r.get("last_probe"):
        out += "\n\nlast probe:\n" + render_kv(r["last_probe"], indent=2)
    if r.get("transitions"):
        out += "\n\n" + render_table(
            ["TIME", "FROM", "TO", "REASON", "DETAIL"],
            [[t["time"], t["from"], t["to"], t["reason"], t["detail"]] for t in r["transitions"]],
        )
    return out


@show.command("backends")
@pass_ctx
def show_backends(c: Ctx) -> None:
    c.out(c.call("GET", "/v1/backends"), _backends_table)


@show.command("backend")
@click.argument("name")
@pass_ctx
def show_backend(c: Ctx, name: str) -> None:
    c.out(c.call("GET", f"/v1/backends/{q(name)}"), _backend_detail)


@show.command("healthchecks")
@pass_ctx
def show_healthchecks(c: Ctx) -> None:
    def table(rows: list[dict[str, Any]]) -> str:
        return render_table(
            ["HEALTHCHECK", "TYPE", "PORT", "INTERVAL", "FAST", "DOWN", "TIMEOUT", "RISE", "FALL"],
            [
                [r["name"], r["type"], r.get("port") or "-", r["interval"], r["fast_interval"],
                 r["down_interval"], r["timeout"], r["rise"], r["fall"]]
                for r in rows
            ],
        )  # fmt: skip

    c.out(c.call("GET", "/v1/healthchecks"), table)


@show.group("vpp", cls=PrefixGroup)
def show_vpp() -> None:
    """VPP state as read back from VPP."""


@show_vpp.group("lb", cls=PrefixGroup)
def show_vpp_lb() -> None:
    """VPP's lb plugin."""


def _lb_state(doc: dict[str, Any]) -> str:
    rows = []
    for v in doc.get("vips", []):
        vip = f"{v['prefix']} {v['protocol']}:{v['port']}"
        if not v.get("ases"):
            rows.append([vip, v["encap"], v["flow_table_length"], "-", "-", "-"])
        for a in v.get("ases", []):
            rows.append(
                [
                    vip,
                    v["encap"],
                    v["flow_table_length"],
                    a["address"],
                    a["weight"],
                    a["num_buckets"],
                ]
            )
    return render_table(["VIP", "ENCAP", "BUCKETS", "AS", "WEIGHT", "AS BUCKETS"], rows)


@show_vpp_lb.command("state")
@pass_ctx
def show_vpp_lb_state(c: Ctx) -> None:
    c.out(c.call("GET", "/v1/vpp/lb/state"), _lb_state)


@show_vpp_lb.command("counters")
@pass_ctx
def show_vpp_lb_counters(c: Ctx) -> None:
    def table(doc: dict[str, Any]) -> str:
        names = ["existing-session", "first-packet", "untracked", "no-server"]
        return render_table(
            ["VIP", *[n.upper() for n in names]],
            [
                [
                    f"{v['prefix']} {v['protocol']}:{v['port']}",
                    *[v["counters"].get(n, 0) for n in names],
                ]
                for v in doc.get("vips", [])
            ],
        )

    c.out(c.call("GET", "/v1/vpp/lb/counters"), table)


# --- sync, config, watch ------------------------------------------------------------------


@cli.group(cls=PrefixGroup)
def sync() -> None:
    """Trigger a full sync."""


@sync.command("vpp")
@click.argument("what", nargs=-1)
@pass_ctx
def sync_vpp(c: Ctx, what: tuple[str, ...]) -> None:
    """sync vpp lb state: dump VPP and apply the difference now."""
    if what not in ((), ("lb",), ("lb", "state")):
        _fail(f"unknown target 'vpp {' '.join(what)}' (usage: sync vpp lb state)")
    c.out(c.call("POST", "/v1/sync"))


@cli.group(cls=PrefixGroup)
def guard() -> None:
    """The vantage guard (health.vantage): release the drains it holds."""


@guard.command("release")
@pass_ctx
def guard_release(c: Ctx) -> None:
    """Release the vantage guard now: the drains it holds apply at once, in one pass."""

    def human(r: dict[str, Any]) -> str:
        if not r["released"]:
            return f"vantage guard not holding (state {r['state']}): nothing to release"
        return f"vantage guard released: {r['drains_applied']} held drain(s) applied"

    c.out(c.call("POST", "/v1/guard/release"), human)


@cli.group(cls=PrefixGroup)
def watch() -> None:
    """Follow live events."""


@watch.command("events")
@click.option("--backend", help="Only events about this backend.")
@click.option("--frontend", help="Only events about this frontend.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Include log lines at or above this level.",
)
@click.option("--count", type=int, default=0, help="Stop after this many events (0 = follow).")
@pass_ctx
def watch_events(
    c: Ctx, backend: str | None, frontend: str | None, log_level: str | None, count: int
) -> None:
    filters = {
        k: v for k, v in (("backend", backend), ("frontend", frontend), ("level", log_level)) if v
    }
    if not log_level:
        filters["level"] = "critical"  # log lines only when asked for
    seen = 0
    try:
        for ev in c.client.events(filters):
            if c.json:
                click.echo(json.dumps(ev, default=str))
            else:
                click.echo(_event_line(ev))
            seen += 1
            if count and seen >= count:
                break
    except ControlError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        pass


def _event_line(ev: dict[str, Any]) -> str:
    import time

    t = time.strftime("%H:%M:%S", time.localtime(float(ev.get("time", 0))))
    kind = ev.get("type", "event")
    if kind == "log":
        return f"{t} log {ev.get('level')} {ev.get('logger')}: {ev.get('message')}"
    rest = " ".join(f"{k}={v}" for k, v in ev.items() if k not in ("time", "type"))
    return f"{t} {kind} {rest}"


cli.add_command(explain)
show.add_command(show_overrides)
cli.add_command(set_)
cli.add_command(config)


def main() -> None:
    cli(prog_name="maglevc")


if __name__ == "__main__":
    main()
