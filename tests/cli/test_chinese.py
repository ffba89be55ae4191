"""The operator's text in Simplified Chinese: under ``--lang zh`` or a ``zh_CN`` locale the
report, the refusals, the scanning station's feedback and the everyday help are Chinese;
English otherwise; JSON output stays English either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.store import packed_pallets
from edge.domain.payloads import BatchLabel, PayloadCodec
from edge.store.database import Store
from line_config.loading import parse_config
from tests.conftest import SMALL_SITE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site_db(tmp_path: Path) -> tuple[Path, Path, str]:
    """A database with one packed pallet of lot L7 (batch 1) and a pallet's scan."""
    config = tmp_path / "site.yaml"
    config.write_text(SMALL_SITE)
    db = tmp_path / "c.db"
    site = parse_config(SMALL_SITE)
    with Store(db, create=True) as store:
        _, pallets = packed_pallets(store, site, 1, "L7")
    scan = PayloadCodec(site.lines[0], site.products).render("pallet", pallets[0], None,
                                                             BatchLabel("L7"))
    return db, config, scan


def codeline(db: Path, config: Path, *args: str, env: dict[str, str] | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "--db", str(db), "--config", str(config),
         *args], capture_output=True, text=True, cwd=ROOT, input=stdin, timeout=60,
        env={**os.environ, "LANG": "C.UTF-8", "LANGUAGE": "", "LC_ALL": "", "NO_COLOR": "1",
             **(env or {})})


def test_the_batch_report_reads_in_chinese_or_english(site_db: tuple[Path, Path, str]) -> None:
    db, config, _ = site_db
    english = codeline(db, config, "report", "batch", "1")
    chinese = codeline(db, config, "--lang", "zh", "report", "batch", "1")
    assert english.returncode == chinese.returncode == 0, chinese.stderr
    assert "lot L7 on L1" in english.stdout and "reconciled" in english.stdout
    assert "批号 L7，产线 L1" in chinese.stdout and "已对账" in chinese.stdout
    assert "已赋码" in chinese.stdout and "commissioned" not in chinese.stdout
    as_json = codeline(db, config, "--lang", "zh", "report", "batch", "1", "--json")
    assert json.loads(as_json.stdout)["reconciled"] is True  # JSON keys and values: English


def test_a_refusal_is_chinese_under_a_chinese_locale(site_db: tuple[Path, Path, str]) -> None:
    db, config, _ = site_db
    english = codeline(db, config, "batch", "start", "9")
    chinese = codeline(db, config, "batch", "start", "9", env={"LANG": "zh_CN.UTF-8"})
    assert english.returncode == chinese.returncode == 1
    assert english.stderr.strip() == ("error: no batch 9: `codeline batch list` shows the "
                                      "batches")
    assert chinese.stderr.strip() == "错误: 没有批次 9：`codeline batch list` 可列出批次"


def test_the_scanning_station_answers_in_chinese(site_db: tuple[Path, Path, str]) -> None:
    db, config, scan = site_db
    assert codeline(db, config, "ship", "create", "--to", "D1", "--region", "east"
                    ).returncode == 0
    done = codeline(db, config, "--lang", "zh", "ship", "add", "1",
                    stdin=f"{scan}\nNOT-A-CODE\n")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("已添加托盘 ") and "批号 L7" in lines[0]
    assert lines[1].startswith("拒收 NOT-A-CODE：")
    assert lines[2].startswith("添加 1 个，拒收 1 个；发货单 1 现有 1 个包装")


def test_the_everyday_help_is_chinese_and_the_rest_stays_whole(
        site_db: tuple[Path, Path, str]) -> None:
    db, config, _ = site_db
    top = codeline(db, config, "--lang", "zh", "--help", env={"COLUMNS": "200"})
    assert "产线现场" in top.stdout and "一个码的全部信息。" in top.stdout
    ship = codeline(db, config, "--lang", "zh", "ship", "add", "--help",
                    env={"COLUMNS": "200"})
    assert "按扫描到的码内容添加托盘或箱" in ship.stdout and "参数" in ship.stdout
    unknown = codeline(db, config, "--lang", "fr", "inspect", "X")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: --lang 'fr': expected one of en, zh"
