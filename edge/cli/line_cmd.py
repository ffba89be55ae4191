"""``codeline line``: command a running line from the terminal (the PLC's PackML commands)."""

from __future__ import annotations

from typing import Any

import typer

from edge.cli.commands import summary
from edge.cli.context import LINE_HELP, UsageProblem, console, ctx_of, emit
from edge.cli.i18n import _
from edge.daemon.packml import ACTING_DONE, TRANSITIONS, Command
from edge.domain.errors import DomainError

app = typer.Typer(help=summary("line"), no_args_is_help=True)


class LineCommandRefused(DomainError):
    """The controller refused a line command (state, config or unknown line)."""


def _settles_in(command: Command) -> str:
    """Where ``command`` leads once its acting state's work succeeds (Stop → Stopped)."""
    acting = next(iter(TRANSITIONS[command].values()))
    return ACTING_DONE[acting].label


SETTLES_IN = {c.name.lower(): _settles_in(c) for c in Command}
HELP = {
    "reset": "Reset: connect the devices and make the line ready (Stopped or Complete → Idle).",
    "start": "Start printing the line's running batch (Idle → Execute).",
    "stop": "Stop: drain the items in transit, void what the printer still holds (→ Stopped).",
    "hold": "Hold the line (Execute → Held), e.g. to clear a jam; unhold resumes.",
    "unhold": "Resume a held line (Held → Execute), once what held it is put right.",
    "suspend": "Suspend for a starved or blocked line (Execute → Suspended); keeps the "
               "printer's buffer.",
    "unsuspend": "Resume a suspended line (Suspended → Execute).",
    "abort": "Abort at once (any state → Aborted); clear, then reset, to go on.",
    "clear": "Clear an aborted line (Aborted → Stopped).",
}
# From each settled state, the commands that bring the line to printing.
TO_PRINT = {"Stopped": ["reset", "start"], "Complete": ["reset", "start"], "Idle": ["start"],
            "Held": ["unhold"], "Aborted": ["clear", "reset", "start"],
            "Suspended": ["unsuspend"]}


def send_command(ctx: typer.Context, line: str | None, command: str, wait: bool
                 ) -> tuple[str, dict[str, Any]]:
    """Send ``command`` for ``line`` to the running controller; the line's id and the
    controller's answer."""
    from edge.daemon import control

    c = ctx_of(ctx)
    line_id = c.line(line).id if c.has_config else line
    if line_id is None:
        raise UsageProblem("name the line: codeline line COMMAND LINE (or pass --config)")
    return line_id, control.send(c.db_path, {"line": line_id, "command": command,
                                             "operator": c.operator, "wait": wait})


def what_the_line_needs(ctx: typer.Context, line_id: str) -> str:
    """What the line still needs before it prints (for ``batch start``)."""
    from edge.daemon import control

    try:
        answer = send_command(ctx, line_id, "state", False)[1]
    except control.ControlUnavailable:
        return _("no controller runs on this database: start it (`codeline run`), then "
                 "`codeline line reset {line}` and `codeline line start {line}`"
                 ).format(line=line_id)
    state = answer.get("state")
    if not answer.get("ok"):
        return _("line {line}: {error}").format(line=line_id, error=answer.get("error"))
    steps = TO_PRINT.get(str(state))
    if steps is None:
        return _("line {line} is {state}").format(line=line_id, state=state)
    return _("line {line} is {state}: it prints once you run {steps}").format(
        line=line_id, state=state, steps=_(", then ").join(
            f"`codeline line {step} {line_id}`" for step in steps))


def _next(answer: dict[str, Any]) -> str:
    step = TO_PRINT.get(str(answer.get("state")), [None])[0]
    allowed = answer.get("allowed") or []
    if step in allowed:
        return _("next: codeline line {step}").format(step=step)
    return _("accepted now: {commands}").format(commands=", ".join(allowed) or _("nothing"))


def describe(line: str, command: str, answer: dict[str, Any]) -> str:
    """What happened, in a sentence an operator can act on."""
    state = answer.get("state", "?")
    why = answer.get("reason") or "; ".join(f"{k}: {v}" for k, v in
                                            (answer.get("alarms") or {}).items())
    if not answer.get("ok"):
        return _("line {line}: {command} refused: {error} ({next})").format(
            line=line, command=command, error=answer.get("error"), next=_next(answer))
    text = _("line {line}: {command} accepted, the line is {state}").format(
        line=line, command=command, state=state)
    if state != SETTLES_IN.get(command) and state == answer.get("accepted"):
        return text + _(" (still working)")
    if state != SETTLES_IN.get(command):
        return text + (f": {why}" if why else "") + f" ({_next(answer)})"
    return text


def _command(name: str) -> None:
    def run(ctx: typer.Context,
            line: str | None = typer.Argument(
                None, help=LINE_HELP),
            wait: bool = typer.Option(True, "--wait/--no-wait",
                                      help="wait until the line settles (default) or only "
                                           "until the command is accepted"),
            json: bool = typer.Option(False, "--json", help="the controller's answer as JSON"),
            ) -> None:
        line_id, answer = send_command(ctx, line, name, wait)
        text = describe(line_id, name, answer)
        if not answer.get("ok") and not json:
            raise LineCommandRefused("{text}", text=text)
        emit(answer, json, lambda: console.print(text, markup=False, soft_wrap=True))
        if not answer.get("ok"):
            raise typer.Exit(1)

    run.__doc__ = HELP[name]
    app.command(name)(run)


for _command_name in SETTLES_IN:
    _command(_command_name)
