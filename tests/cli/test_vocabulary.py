"""One vocabulary on every interface: CLI ``--json``, the pull API and manifests name the same
things the same way, and write every time as RFC 3339 UTC."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from line_config.loading import example_path, parse_config
from sync import api_models, keys
from sync.api import create_app
from sync.serving import serve

ROOT = Path(__file__).resolve().parents[2]
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def codeline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def times_and_units(value: Any, where: str = "") -> list[str]:
    """What breaks the rules: a time not written as RFC 3339 UTC, a field named ``…_ms``."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{where}.{key}"
            if key.endswith("_ms"):
                found.append(f"{path}: a unit in a name the outside reads")
            if (key == "at" or key.endswith("_at")) and inner is not None \
                    and not (isinstance(inner, str) and RFC3339_UTC.fullmatch(inner)):
                found.append(f"{path} = {inner!r}: not RFC 3339 UTC")
            found += times_and_units(inner, path)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += times_and_units(inner, f"{where}[{i}]")
    return found


async def test_cli_json_the_api_and_manifests_say_the_same_thing_the_same_way(
        tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert codeline("demo", "--db", str(db)).returncode == 0
    config = example_path("simulated")
    base = ["--db", str(db), "--config", str(config)]

    def cli_json(*args: str) -> Any:
        done = codeline(*base, *args, "--json")
        assert done.returncode == 0, (args, done.stderr)
        return json.loads(done.stdout)

    listed = cli_json("manifests", "list")
    shipped = cli_json("ship", "list")
    shown = codeline(*base, "manifests", "show", "1", "--key",
                     str(tmp_path / "keys" / "manifest-signing.key"))
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    head, codes = lines[0], lines[1:]
    outputs = {
        "batch list": cli_json("batch", "list"), "report batch": cli_json("report", "batch", "1"),
        "inspect": cli_json("inspect", codes[0]["serial"]), "audit list": cli_json("audit", "list"),
        "ship list": shipped, "manifests list": listed, "tokens list": cli_json("tokens", "list"),
        "sync status": cli_json("sync", "status"), "pool stats": cli_json("pool", "stats"),
        "manifest": lines,
    }
    problems = [f"{name}{p}" for name, out in outputs.items() for p in times_and_units(out)]
    assert not problems, problems
    assert outputs["inspect"]["history"] and outputs["audit list"][0]["at"]
    assert all(e["detail"] is None or isinstance(e["detail"], dict) for e in outputs["audit list"])

    # A manifest: the same fields, the same values, from the CLI and from the API.
    token = codeline(*base, "tokens", "create", "--name", "vocab", "--scope", "manifests:read")
    secret = token.stdout.strip().splitlines()[-1]
    signing = keys.load_private(tmp_path / "keys" / "manifest-signing.key")
    app = create_app(db, parse_config(config.read_text()), signing)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        page = (await client.get("/api/v2/manifests",
                                 headers={"Authorization": f"Bearer {secret}"})).json()
    assert page["manifests"] == listed
    assert set(listed[0]) == set(api_models.ManifestSummary.model_fields)
    assert listed[0]["issued_at"] == head["issued_at"] and listed[0]["codes"] == head["codes"]

    # A shipment: the names its manifest's header gives it.
    ship = shipped[0]
    assert ship["codes"] == head["codes"] and ship["reference"] == head["reference"]
    assert {k: ship[k] for k in ("distributor", "region", "distributor_gln")} == \
        head["destination"]
    assert outputs["batch list"][0]["id"] == head["batches"][0]["id"]
    assert {k: outputs["batch list"][0][k] for k in ("line", "product", "lot", "expiry")} == \
        {k: head["batches"][0][k] for k in ("line", "product", "lot", "expiry")}
