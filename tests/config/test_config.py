"""Configuration: the examples load; every rule's error names the field and its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from line_config.loading import (
    SCHEMA_FILE,
    ConfigError,
    iter_examples,
    json_schema,
    load_config,
    parse_config,
)
from tests.conftest import SMALL_SITE

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", list(iter_examples()), ids=lambda p: p.stem)
def test_shipped_examples_are_valid(path: Path) -> None:
    config = load_config(path)
    assert config.lines


def test_the_committed_json_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == json_schema()


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [(p.path, p.line, p.message) for p in info.value.problems]


BROKEN = {
    "unknown key": ("    packaging: {items_per_case: 4, cases_per_pallet: 2}",
                    "    packaging: {items_per_case: 4, cases_per_pallet: 2, speed: 3}",
                    "lines.0.packaging.speed", "unknown key"),
    "number out of range": ("items_per_case: 4", "items_per_case: 0",
                            "lines.0.packaging.items_per_case", "greater than or equal to 1"),
    "bad GTIN": ('gtin_item: "06901234567892"', 'gtin_item: "06901234567893"',
                 "products.0.gtin_item", "check digit"),
    "bad alphabet": ("item: {symbology: qr, url_base: \"https://c.example.com/q/\"}",
                     "item: {symbology: qr, url_base: \"https://c.example.com/q/\", "
                     "serial: {alphabet: \"0123456789AB\", length: 20}}",
                     "lines.0.codes.item.serial.alphabet", "adjacent transposition"),
    "too little entropy": ("item: {symbology: qr, url_base: \"https://c.example.com/q/\"}",
                           "item: {symbology: qr, url_base: \"https://c.example.com/q/\", "
                           "serial: {length: 8}}", "lines.0.codes.item.serial", "60"),
    "qr without url": ("item: {symbology: qr, url_base: \"https://c.example.com/q/\"}",
                       "item: {symbology: qr}", "lines.0.codes.item", "url_base"),
    "wrong union tag": ("pallet: {symbology: sscc,", "pallet: {symbology: barcode,",
                        "lines.0.codes.pallet", "does not match any of the expected tags"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=str)
def test_each_broken_rule_is_reported_with_path_and_line(case: str) -> None:
    old, new, path, words = BROKEN[case]
    assert old in SMALL_SITE
    text = SMALL_SITE.replace(old, new, 1)
    found = problems(text)
    matching = [p for p in found if p[0].startswith(path) and words in p[2]]
    assert matching, found
    line_no = matching[0][1]
    assert line_no is not None
    expected_line = next(i for i, t in enumerate(text.splitlines(), 1) if new.split(":")[0]
                         .strip() in t and (new.strip()[:20] in t))
    assert abs(line_no - expected_line) <= 1


DEVICE_LINE = """
    devices:
      - id: p1
        driver: clarity
        transport: {kind: tcp, host: 127.0.0.1, port: 3003}
        job: J
      - id: r1
        driver: dmcc
        transport: {kind: tcp, host: 127.0.0.1, port: 99999}
    stations:
      - {id: s1, kind: item_print, printer: r1}
    plc: {host: 10.0.0.5, security: [none]}
"""


def test_cross_field_rules_name_the_station_and_device() -> None:
    found = problems(SMALL_SITE + DEVICE_LINE)
    text = "\n".join(f"{p[0]} @{p[1]}: {p[2]}" for p in found)
    assert "lines.0.devices.1.dmcc.transport.port" in text
    port_line = (SMALL_SITE + DEVICE_LINE).splitlines().index(
        "        transport: {kind: tcp, host: 127.0.0.1, port: 99999}") + 1
    assert f"port @{port_line}:" in text


def test_station_role_and_insecure_plc_are_refused() -> None:
    fixed = SMALL_SITE + DEVICE_LINE.replace("port: 99999", "port: 2323")
    found = problems(fixed)
    messages = " ".join(p[2] for p in found)
    assert "printer 'r1' is a reader" in messages or "security 'none'" in messages


def test_secrets_are_not_accepted_inline() -> None:
    text = SMALL_SITE + "sync: {push_url: \"https://x.example.com/m\", push_token: \"s3cret\"}\n"
    found = problems(text)
    assert any(p[0] == "sync.push_token" and "unknown key" in p[2] for p in found)


def test_not_yaml_is_reported_with_its_line() -> None:
    assert problems("site: {id: x\nlines: [")[0][1] is not None


def test_config_check_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SMALL_SITE.replace("items_per_case: 4", "items_per_case: -1")
                    .replace('"6901234"', '"69"'))
    result = subprocess.run([sys.executable, "-m", "edge.cli.main", "config", "check", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert "lines.0.packaging.items_per_case" in result.stderr
    assert "company_prefix" in result.stderr
    assert "Traceback" not in result.stderr
    ok = subprocess.run([sys.executable, "-m", "edge.cli.main", "config", "check",
                         str(next(iter_examples()))], capture_output=True, text=True, cwd=ROOT,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr


PLC_OFF_LOOPBACK = """
    plc: {host: 10.0.0.5, security: [sign_encrypt]%s}
"""


@pytest.mark.parametrize(("extra", "missing"), [
    ("", "trusted_certs_dir and users_file"),
    (", users_file: users.txt", "trusted_certs_dir"),
    (", trusted_certs_dir: pki/trusted", "users_file"),
])
def test_a_plc_server_off_loopback_needs_a_trust_list_and_users(extra: str, missing: str
                                                                 ) -> None:
    found = problems(SMALL_SITE + PLC_OFF_LOOPBACK % extra)
    assert any(p[0] == "lines.0.plc" and f"needs {missing}" in p[2] for p in found), found


def test_a_plc_server_off_loopback_may_opt_out_loudly() -> None:
    config = parse_config(SMALL_SITE + PLC_OFF_LOOPBACK % ", allow_insecure_remote: true")
    plc = config.lines[0].plc
    assert plc is not None
    assert plc.insecure_reasons() == ["any client certificate", "anonymous users"]
    safe = parse_config(SMALL_SITE + PLC_OFF_LOOPBACK %
                        ", users_file: u.txt, trusted_certs_dir: pki/trusted")
    assert safe.lines[0].plc is not None and safe.lines[0].plc.insecure_reasons() == []


def test_two_endpoints_on_one_port_are_refused_with_both_names() -> None:
    clash = SMALL_SITE + """
    devices:
      - id: p1
        driver: clarity
        transport: {kind: tcp, host: 127.0.0.1, port: 4840}
        job: J
    plc: {host: 127.0.0.1, port: 4840, security: [none]}
"""
    found = problems(clash)
    assert any("line L1 device 'p1' and line L1 PLC server both use 127.0.0.1:4840" in p[2]
               for p in found), found
    on_api = SMALL_SITE + "    plc: {host: 127.0.0.1, port: 8600, security: [none]}\n"
    assert any("line L1 PLC server and the pull API (sync.api) both use" in p[2]
               for p in problems(on_api))


def test_modbus_units_behind_one_gateway_may_share_its_port() -> None:
    units = SMALL_SITE + """
    devices:
      - id: laser
        driver: modbus_laser
        transport: {kind: modbus_tcp, host: 10.0.0.9, port: 502, unit: 1}
      - id: laser2
        driver: modbus_laser
        transport: {kind: modbus_tcp, host: 10.0.0.9, port: 502, unit: 2}
"""
    parse_config(units)
    with pytest.raises(ConfigError, match="both use 10.0.0.9:502"):
        parse_config(units.replace("unit: 2", "unit: 1"))


@pytest.mark.parametrize(("sync", "words"), [
    ("sync: {api: {host: 0.0.0.0}}", "without TLS"),
    ("sync: {push_url: \"http://cloud.example.com/m\"}", "plain http"),
])
def test_tokens_never_cross_the_network_in_clear(sync: str, words: str) -> None:
    assert any(words in p[2] for p in problems(SMALL_SITE + sync + "\n"))


def test_plain_http_is_allowed_on_loopback_or_by_an_explicit_opt_out() -> None:
    parse_config(SMALL_SITE + "sync: {push_url: \"http://127.0.0.1:9000/m\", "
                 "push_token_env: CODELINE_PUSH_TOKEN}\n")
    parse_config(SMALL_SITE + "sync: {api: {host: 0.0.0.0, allow_plain_http: true}}\n")


def test_every_config_option_is_read_by_something() -> None:
    """An option nothing reads is refused at load rather than accepted and ignored: each
    field of every config model is read somewhere in the runtime (the discriminators that
    pick a model, ``kind``/``driver``/``family``, are read by choosing it)."""
    import inspect
    import re

    from pydantic import BaseModel

    import line_config.devices
    import line_config.models
    import line_config.plc

    root = Path(__file__).resolve().parents[2]
    runtime = "\n".join(f.read_text() for package in ("edge", "drivers", "sync", "line_config")
                        for f in (root / package).rglob("*.py"))
    unread = []
    for module in (line_config.models, line_config.devices, line_config.plc):
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, BaseModel) and \
                    cls.__module__ == module.__name__:
                unread += [f"{cls.__name__}.{name}" for name in cls.model_fields
                           if name not in ("kind", "driver", "family")
                           and not re.search(rf"\.{name}\b", runtime)]
    assert unread == []
