"""The index of ``codeline``'s commands: each name, the module that defines it, a one-line
summary and the panel it is listed in. ``codeline`` imports only the module of the command
it runs, so that everyday commands start fast; ``codeline --help`` imports none."""

from __future__ import annotations

from dataclasses import dataclass

from edge.cli.i18n import N_


@dataclass(frozen=True)
class Entry:
    """Where a command lives: ``module.attr`` is a ``typer.Typer`` (a group) or a function."""

    module: str
    attr: str
    summary: str
    panel: str


AT_THE_LINE = N_("At the line")
AT_THE_DOCK = N_("At the dock")
CODES = N_("Codes and packing")
THE_BOX = N_("The box")
THE_CLOUD = N_("The cloud")
TRY_IT = N_("Try it")

COMMANDS: dict[str, Entry] = {
    "status": Entry("edge.cli.run_cmd", "status", N_("Live view of the running lines."),
                    AT_THE_LINE),
    "line": Entry("edge.cli.line_cmd", "app", N_("Command a running line: reset, start, hold, "
                                                 "unhold, stop, abort, clear (as its PLC can)."),
                  AT_THE_LINE),
    "batch": Entry("edge.cli.batch_cmd", "app", N_("Production batches."), AT_THE_LINE),
    "inspect": Entry("edge.cli.inspect_cmd", "inspect_", N_("Everything about one code."),
                     AT_THE_LINE),
    "report": Entry("edge.cli.batch_cmd", "report_app", N_("Reports."), AT_THE_LINE),
    "ship": Entry("edge.cli.ship_cmd", "app", N_("Shipments: create, add (a scanning station), "
                                                 "show, remove, confirm (activates), cancel, "
                                                 "list."), AT_THE_DOCK),
    "pool": Entry("edge.cli.pool_cmd", "app", N_("The code pool: generate, import, stats, "
                                                 "segments, retire."), CODES),
    "agg": Entry("edge.cli.agg_cmd", "app", N_("Aggregation: pack, unpack, replace, close, "
                                               "reopen, decommission."), CODES),
    "init": Entry("edge.cli.database_cmd", "init", N_("Create or upgrade the database."),
                  THE_BOX),
    "run": Entry("edge.cli.run_cmd", "run", N_("Run the site's lines (the controller)."),
                 THE_BOX),
    "backup": Entry("edge.cli.database_cmd", "backup", N_("A verified copy of the database, "
                                                          "taken while the line runs."),
                    THE_BOX),
    "service": Entry("edge.cli.service_cmd", "app", N_("Run the controller as a systemd "
                                                       "service."), THE_BOX),
    "config": Entry("edge.cli.config_cmd", "app", N_("Check configuration files and export "
                                                     "their schema."), THE_BOX),
    "probe": Entry("edge.cli.probe_cmd", "probe_device", N_("Connect to one configured device "
                                                            "and print what it reports."),
                   THE_BOX),
    "certs": Entry("edge.cli.run_cmd", "certs_app", N_("The PLC server's certificate and "
                                                       "users."), THE_BOX),
    "audit": Entry("edge.cli.audit_cmd", "app", N_("The audit log."), THE_BOX),
    "sync": Entry("edge.cli.sync_cmd", "sync_app", N_("Delivery of manifests to the cloud."),
                  THE_CLOUD),
    "manifests": Entry("edge.cli.sync_cmd", "manifests_app", N_("Manifests issued by "
                                                                "shipments."), THE_CLOUD),
    "export": Entry("edge.cli.sync_cmd", "export_app", N_("Exports for other systems."),
                    THE_CLOUD),
    "keys": Entry("edge.cli.sync_cmd", "keys_app", N_("The site's manifest-signing key."),
                  THE_CLOUD),
    "tokens": Entry("edge.cli.sync_cmd", "tokens_app", N_("Bearer tokens of the pull API."),
                    THE_CLOUD),
    "api": Entry("edge.cli.sync_cmd", "api_app", N_("The pull API for the cloud."), THE_CLOUD),
    "demo": Entry("edge.cli.demo", "demo", N_("A simulated line and the controller, start to "
                                              "shipment."), TRY_IT),
    "sim": Entry("edge.cli.sim_cmd", "app", N_("Run a device simulator (prints where it "
                                               "listens)."), TRY_IT),
}

# The commands people at the line and the dock use every day: their help is translated.
EVERYDAY = frozenset({"status", "line", "batch", "inspect", "report", "ship", "pool", "agg"})


def summary(name: str) -> str:
    """A group's help, as the index gives it (one text for the list and the group)."""
    return COMMANDS[name].summary
