"""`chrom check-config --profile gcp`: name every missing or malformed setting before a
deployment finds it at 3 a.m.

The production profile needs the queue (Pub/Sub project), the landing bucket, InfluxDB
Cloud (URL, token, org, bucket) and Snowflake (account, user, role, warehouse, database,
private key). Each problem names its variable and says what is expected; nothing is
printed of a secret's value. Settings.from_env's own checks (profile, numbers, dbt
target) run first and are reported the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from chrom_platform.settings import PROFILES, SNOWFLAKE_ENV, Settings, SettingsError

#: names GCP gives projects and buckets, and Snowflake identifiers
_GCP_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
_SNOWFLAKE_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SNOWFLAKE_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


@dataclass(frozen=True)
class Problem:
    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


def check(env: Mapping[str, str], profile: str) -> list[Problem]:
    """Problems with the settings `env` gives the profile (empty: good to go)."""
    if profile not in PROFILES:
        return [Problem("--profile", f"unknown profile {profile!r}; expected one of {PROFILES}")]
    problems: list[Problem] = []
    env = {**env, "CHROM_PROFILE": profile}
    try:
        Settings.from_env(env)
    except SettingsError as e:
        var, _, msg = str(e).partition(": ")
        problems.append(Problem(var, msg))
    if profile == "gcp":
        problems += _gcp(env)
    elif not problems:
        problems += _local(env)
    return problems


#: What the streaming consumers (`chrom-bridge`) need; the rest is the warehouse's.
_STREAMING_PREFIXES = ("CHROM_PROFILE", "CHROM_TRANSPORT_URI", "CHROM_LANDING_URI", "CHROM_INFLUX_")


def check_streaming(env: Mapping[str, str], profile: str) -> list[Problem]:
    """`check`, for the settings the streaming consumers use (no Snowflake for them)."""
    return [p for p in check(env, profile) if p.variable.startswith(_STREAMING_PREFIXES)]


def require(env: Mapping[str, str], *, streaming_only: bool = False) -> None:
    """At start: raise SettingsError naming every problem with the settings of the profile
    `env` chooses, so a gcp deployment never runs on local defaults."""
    profile = Settings.from_env(env).profile  # its own errors first, as they are
    problems = (check_streaming if streaming_only else check)(env, profile)
    if problems:
        raise SettingsError(
            f"{len(problems)} setting problem(s) for profile {profile!r}"
            " (`chrom check-config` lists them too):\n" + "\n".join(f"  {p}" for p in problems)
        )


def _missing(env: Mapping[str, str], var: str, what: str) -> Problem | None:
    return None if env.get(var, "").strip() else Problem(var, f"missing: {what}")


def _gcp(env: Mapping[str, str]) -> list[Problem]:
    out: list[Problem] = []

    def need(var: str, what: str) -> str | None:
        p = _missing(env, var, what)
        if p:
            out.append(p)
            return None
        return env[var].strip()

    if transport := need("CHROM_TRANSPORT_URI", "the Pub/Sub project as pubsub://<project-id>"):
        u = urlparse(transport)
        if u.scheme != "pubsub" or not _GCP_PROJECT.fullmatch(u.netloc):
            out.append(
                Problem(
                    "CHROM_TRANSPORT_URI",
                    "expected pubsub://<project-id> (6-30 characters: a-z, 0-9, -)",
                )
            )
    if landing := need("CHROM_LANDING_URI", "the landing bucket as gs://<bucket>[/prefix]"):
        u = urlparse(landing)
        if u.scheme != "gs" or not _GCS_BUCKET.fullmatch(u.netloc):
            out.append(Problem("CHROM_LANDING_URI", "expected gs://<bucket>[/prefix]"))
    if url := need("CHROM_INFLUX_URL", "the InfluxDB Cloud (2.x/3.x) URL"):
        u = urlparse(url)
        if u.scheme != "https" or not u.netloc:
            out.append(
                Problem(
                    "CHROM_INFLUX_URL",
                    "expected an https:// URL (production data leaves the network)",
                )
            )
    need("CHROM_INFLUX_TOKEN", "an InfluxDB API token with write access to the bucket")
    need("CHROM_INFLUX_ORG", "the InfluxDB organisation")
    need("CHROM_INFLUX_DATABASE", "the InfluxDB bucket live points go to")
    if (t := env.get("CHROM_DBT_TARGET")) and t != "prod":
        out.append(
            Problem(
                "CHROM_DBT_TARGET",
                f"the gcp profile builds on Snowflake: expected 'prod', got {t!r}",
            )
        )
    for key, var in SNOWFLAKE_ENV.items():
        value = need(var, f"Snowflake {key.replace('_', ' ')}")
        if value is None:
            continue
        if key == "account" and not _SNOWFLAKE_ACCOUNT.fullmatch(value):
            out.append(Problem(var, "expected an account identifier such as myorg-myaccount"))
        elif key in ("user", "role", "warehouse", "database") and not _SNOWFLAKE_IDENT.fullmatch(
            value
        ):
            out.append(Problem(var, f"expected a Snowflake identifier, got {value!r}"))
        elif key == "private_key_file":
            out += _private_key(var, Path(value))
    return out


def _private_key(var: str, path: Path) -> list[Problem]:
    if not path.is_file():
        return [Problem(var, f"no such file: {path}")]
    head = path.read_text(errors="replace")[:100]
    if "PRIVATE KEY-----" not in head:
        return [Problem(var, f"{path} is not a PEM private key (key-pair authentication)")]
    return []


def _local(env: Mapping[str, str]) -> list[Problem]:
    out: list[Problem] = []
    s = Settings.from_env(env)
    u = urlparse(s.streaming.influx_url)
    if u.scheme not in ("http", "https") or not u.netloc:
        out.append(
            Problem(
                "CHROM_INFLUX_URL", f"expected an http(s):// URL, got {s.streaming.influx_url!r}"
            )
        )
    if urlparse(s.landing_uri).scheme not in ("", "file"):
        out.append(
            Problem(
                "CHROM_LANDING_URI", "the local profile lands in a folder (a path or file:// URI)"
            )
        )
    for var, path in (
        ("CHROM_EQUIPMENT", s.streaming.equipment_path),
        ("CHROM_RECIPES", s.streaming.recipes_path),
    ):
        if not Path(path).is_file():
            out.append(Problem(var, f"no such file: {path}"))
    return out
