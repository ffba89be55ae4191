"""``codeline service unit``: the systemd unit that runs the controller as a service."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from edge.cli.commands import summary
from edge.cli.context import UsageProblem, ctx_of

app = typer.Typer(help=summary("service"), no_args_is_help=True)

UNIT = """\
# codeline controller of site {site}, written by `codeline service unit`.
# Install: save as /etc/systemd/system/{name}.service, then
#   systemctl daemon-reload && systemctl enable --now {name}
[Unit]
Description=codeline controller of serialized coding lines (site {site})
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
User={user}
Group={group}
WorkingDirectory={workdir}
Environment=PYTHONUNBUFFERED=1
# READY=1 once the lines are up; a stalled event loop stops the watchdog pings.
TimeoutStartSec=120
WatchdogSec={watchdog}
Restart=on-failure
RestartSec=5
# A clean stop settles every line (printer buffers voided); each may take up to 45 s.
TimeoutStopSec={stop_timeout}
UMask=0027
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes
ReadWritePaths={writable}

[Install]
WantedBy=multi-user.target
"""


def _exec_start(config: Path) -> str:
    """The installed ``codeline`` beside this Python, or this Python running the module."""
    script = Path(sys.executable).parent / "codeline"
    program = str(script) if script.exists() else f"{sys.executable} -m edge.cli.main"
    return f"{program} --config {_plain(config)} run"


def _plain(path: Path) -> str:
    text = str(path)
    if any(ch.isspace() or ch in "\"'\\;$%" for ch in text):
        raise UsageProblem("{text}: a path for a systemd unit may not hold spaces, quotes, "
                           "'\\', ';', '$' or '%'; move it", text=text)
    return text


@app.command("unit")
def unit(
    ctx: typer.Context,
    user: str = typer.Option("codeline", "--user", help="the system user the service runs as"),
    group: str | None = typer.Option(None, "--group", help="its group (default: --user)"),
    name: str = typer.Option("codeline", "--name", help="the unit's name"),
    watchdog: int = typer.Option(30, "--watchdog", min=5, max=600,
                                 help="seconds without a ping before systemd restarts it"),
) -> None:
    """Print the systemd unit (Type=notify, watchdog, restart on failure) for this config."""
    c = ctx_of(ctx)
    if c.config_option is None:
        raise UsageProblem("the unit runs a configured site: pass --config FILE")
    config = c.config_option.resolve()
    site = c.config
    db_dir = c.db_path.parent
    writable = sorted({db_dir, config.parent})
    typer.echo(UNIT.format(
        site=site.site.id, name=name, exec_start=_exec_start(config), user=user,
        group=group or user, workdir=_plain(config.parent), watchdog=watchdog,
        stop_timeout=45 * len(site.lines) + 30,
        writable=" ".join(_plain(p) for p in writable)), nl=False)
