"""`chrom check-config`: every missing or malformed production setting is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from chrom_platform.check_config import check
from chrom_platform.cli import main


@pytest.fixture
def good_gcp(tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "rsa_key.p8"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n")
    return {
        "CHROM_TRANSPORT_URI": "pubsub://chrom-prod-123",
        "CHROM_LANDING_URI": "gs://chrom-prod-landing/lake",
        "CHROM_INFLUX_URL": "https://eu-central-1-1.aws.cloud2.influxdata.com",
        "CHROM_INFLUX_TOKEN": "t0ken",
        "CHROM_INFLUX_ORG": "pharma",
        "CHROM_INFLUX_DATABASE": "chrom",
        "SNOWFLAKE_ACCOUNT": "myorg-prod",
        "SNOWFLAKE_USER": "CHROM_TRANSFORMER",
        "SNOWFLAKE_ROLE": "CHROM_TRANSFORMER",
        "SNOWFLAKE_WAREHOUSE": "CHROM_TRANSFORM_WH",
        "SNOWFLAKE_DATABASE": "CHROM",
        "SNOWFLAKE_PRIVATE_KEY_PATH": str(key),
    }


def _vars(problems) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.variable for p in problems]


def test_a_complete_production_environment_passes(good_gcp) -> None:
    assert check(good_gcp, "gcp") == []


def test_every_missing_variable_is_named(good_gcp) -> None:
    problems = check({}, "gcp")
    assert set(_vars(problems)) == set(good_gcp)
    assert all("missing" in p.message for p in problems)


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("CHROM_TRANSPORT_URI", "sqlite:///tmp/q.db", "pubsub://"),
        ("CHROM_TRANSPORT_URI", "pubsub://Bad_Project", "pubsub://"),
        ("CHROM_LANDING_URI", "/data/lake", "gs://"),
        ("CHROM_LANDING_URI", "gs://UPPER", "gs://"),
        ("CHROM_INFLUX_URL", "http://influx:8086", "https://"),
        ("SNOWFLAKE_ROLE", "chrom reader", "identifier"),
        ("SNOWFLAKE_PRIVATE_KEY_PATH", "/nonexistent/key.p8", "no such file"),
        ("CHROM_DBT_TARGET", "local", "expected 'prod'"),
        ("CHROM_LIVE_STALE_AFTER_S", "two minutes", "expected a number"),
        ("CHROM_WAREHOUSE_MAX_LAG_MIN", "-5", "must be > 0"),
    ],
)
def test_malformed_settings_are_named_with_what_is_expected(good_gcp, var, value, says) -> None:
    problems = check({**good_gcp, var: value}, "gcp")
    assert _vars(problems) == [var], problems
    assert says in problems[0].message


def test_a_file_that_is_not_a_private_key_is_refused(good_gcp, tmp_path) -> None:
    not_key = tmp_path / "cert.pem"
    not_key.write_text("-----BEGIN CERTIFICATE-----\n")
    problems = check({**good_gcp, "SNOWFLAKE_PRIVATE_KEY_PATH": str(not_key)}, "gcp")
    assert _vars(problems) == ["SNOWFLAKE_PRIVATE_KEY_PATH"]
    assert "not a PEM private key" in problems[0].message


def test_no_secret_value_is_echoed(good_gcp) -> None:
    problems = check({**good_gcp, "CHROM_INFLUX_URL": "ftp://x"}, "gcp")
    assert all("t0ken" not in str(p) for p in problems)


def test_local_profile_defaults_pass_and_a_bad_url_does_not() -> None:
    assert check({}, "local") == []
    assert _vars(check({"CHROM_INFLUX_URL": "localhost:8086"}, "local")) == ["CHROM_INFLUX_URL"]


def test_the_command_exits_1_and_lists_problems(monkeypatch, capsys, good_gcp) -> None:
    for var in good_gcp:
        monkeypatch.delenv(var, raising=False)
    assert main(["check-config", "--profile", "gcp"]) == 1
    err = capsys.readouterr().err
    assert "SNOWFLAKE_PRIVATE_KEY_PATH: missing" in err
    assert "12 problem(s)" in err
    for var, value in good_gcp.items():
        monkeypatch.setenv(var, value)
    assert main(["check-config", "--profile", "gcp"]) == 0


# -- at start (issue 18, case 10): the gcp profile never runs on local defaults -------------


@pytest.fixture
def bare_gcp(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in [v for v in os.environ if v.startswith(("CHROM_", "SNOWFLAKE_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("CHROM_PROFILE", "gcp")


def test_chrom_bridge_refuses_to_start_on_an_incomplete_gcp_profile(bare_gcp, caplog) -> None:
    from chrom_platform import bridge_cli

    assert bridge_cli.main(["drain"]) == 2
    for var in ("CHROM_TRANSPORT_URI", "CHROM_LANDING_URI", "CHROM_INFLUX_TOKEN"):
        assert var in caplog.text
    assert "SNOWFLAKE_" not in caplog.text  # the consumers do not need the warehouse


def test_the_streaming_check_ignores_warehouse_settings(good_gcp) -> None:
    from chrom_platform.check_config import check_streaming

    env = {k: v for k, v in good_gcp.items() if not k.startswith("SNOWFLAKE_")}
    assert check_streaming(env, "gcp") == []
    assert _vars(check(env, "gcp"))  # the whole check still wants them


def test_the_dagster_code_location_refuses_to_load_on_an_incomplete_gcp_profile(
    bare_gcp,
) -> None:
    from chrom_platform.definitions import defs
    from chrom_platform.settings import SettingsError

    with pytest.raises(SettingsError, match=r"CHROM_TRANSPORT_URI: missing") as e:
        defs()
    assert "SNOWFLAKE_ACCOUNT: missing" in str(e.value)
