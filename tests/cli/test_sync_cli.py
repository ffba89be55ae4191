"""Keys, manifests and EPCIS export from the command line, on the demo's database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from line_config.loading import example_path
from sync import keys, manifest

ROOT = Path(__file__).resolve().parents[2]


def codeline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_keys_manifests_and_epcis_from_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert codeline("demo", "--db", str(db)).returncode == 0
    base = ["--db", str(db), "--config", str(example_path("simulated"))]
    key = tmp_path / "keys" / "site.pem"
    made = codeline(*base, "keys", "generate", "--key", str(key))
    assert made.returncode == 0 and "BEGIN PUBLIC KEY" in made.stdout
    again = codeline(*base, "keys", "generate", "--key", str(key))
    assert again.returncode == 1 and "exists" in again.stderr
    listed = json.loads(codeline(*base, "manifests", "list", "--json").stdout)
    assert [(m["seq"], m["kind"]) for m in listed] == [(1, "activation")]
    assert listed[0]["acked_at"] is not None, "the demo's cloud acknowledged it"
    # The demo's cloud already pulled manifest 1: it was sealed with the demo's key, and a
    # sealed manifest keeps its signature whatever key is at hand now.
    demo_key = tmp_path / "keys" / "manifest-signing.key"
    shown = codeline(*base, "manifests", "show", "1", "--key", str(key))
    assert shown.returncode == 0, shown.stderr
    digest = shown.stderr.split("sha256=")[1].split()[0]
    signature = shown.stderr.split("signature=")[1].split()[0]
    public = keys.load_public(codeline(*base, "keys", "public", "--key", str(demo_key)).stdout)
    manifest.verify(iter([shown.stdout.encode()]), digest, signature, public)
    head = json.loads(shown.stdout.splitlines()[0])
    assert head["codes"] == 1 + 10 + 240 and head["destination"]["region"] == "east"
    out = tmp_path / "batch1.jsonld"
    exported = codeline(*base, "export", "epcis", "--batch", "1", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    doc = json.loads(out.read_text())
    assert doc["type"] == "EPCISDocument" and doc["epcisBody"]["eventList"]
    through = exported.stdout.split("--after")[1].split()[0]
    later = codeline(*base, "export", "epcis", "--batch", "1", "--after", through)
    assert later.returncode == 0 and json.loads(later.stdout)["epcisBody"]["eventList"] == []
    shipment = codeline(*base, "ship", "create", "--to", "D-9", "--region", "east", "--ref",
                        "DN-2026-77", "--distributor-gln", "9520001111112")
    assert shipment.returncode == 0 and "desadv DN-2026-77" in shipment.stdout
    bad_gln = codeline(*base, "ship", "create", "--to", "D-9", "--region", "east",
                       "--distributor-gln", "9520001111113")
    assert bad_gln.returncode == 1 and "not a GLN" in bad_gln.stderr
    missing = codeline(*base, "export", "epcis", "--batch", "99")
    assert missing.returncode == 1 and "no batch 99" in missing.stderr
