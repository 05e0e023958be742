"""What no log knows, from the deployer's ``report.toml``: read with :mod:`tomllib`, validated, never guessed.

The file describes the deployment (system, vendor, version), its purpose and the decisions
it supports, its use and data-management policy, testing, training, community meetings,
costs, complaints, audits and breaches, and a few parameters of the report itself (local
time zone and working hours for "searches out of hours", the threshold for "one subject
searched repeatedly", the smallest count a public report shows). ``docs/report.toml`` is a
complete example; :data:`SCHEMA` is the list of every key.

Validation is strict: an unknown key, or a value of the wrong type, is refused with a
message that names the key (``report.toml: policy.working_hours must be "HH:MM-HH:MM"``).
A key that is simply absent is not an error: the report prints it as missing
(``missing from report.toml: system.vendor``), never leaves it blank.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import AuditError

__all__ = ["SCHEMA", "ReportConfig", "ReportConfigError", "load_report_config", "parse_report_config"]


class ReportConfigError(AuditError):
    """``report.toml`` cannot be read, or a key in it is unknown or of the wrong type."""

    code = "bad_report_config"


#: Every key ``report.toml`` may hold: dotted key -> (type, what it is). Types: ``text`` (a string),
#: ``int``, ``number``, ``texts`` (a list of strings), ``date`` (a TOML date), ``items`` (an array of tables
#: whose keys are listed as ``<key>[].<field>``).
SCHEMA: dict[str, tuple[str, str]] = {
    "system.name": ("text", "name of the system (RCW 43.386.020(2)(a))"),
    "system.vendor": ("text", "vendor (RCW 43.386.020(2)(a))"),
    "system.version": ("text", "version (RCW 43.386.020(2)(a))"),
    "system.capabilities": ("text", "general capabilities (RCW 43.386.020(2)(b))"),
    "system.limitations": ("text", "limitations (RCW 43.386.020(2)(b))"),
    "system.data_inputs": ("text", "data inputs, and how they are generated, collected and processed (RCW 43.386.020(2)(c))"),
    "system.data_outputs": ("text", "data outputs (RCW 43.386.020(2)(c))"),
    "purpose.statement": ("text", "purpose and proposed use (RCW 43.386.020(2)(d))"),
    "purpose.decisions": ("text", "'final' or 'support': the decisions the system makes or supports (RCW 43.386.020(2)(e))"),
    "purpose.benefits": ("text", "intended benefits (RCW 43.386.020(2)(e))"),
    "policy.use": ("text", "who uses it, when and how (RCW 43.386.020(2)(f))"),
    "policy.data_minimisation": ("text", "data minimisation (RCW 43.386.020(2)(f))"),
    "policy.data_integrity": ("text", "data integrity (RCW 43.386.020(2)(f))"),
    "policy.retention": ("text", "data retention (RCW 43.386.020(2)(f))"),
    "policy.security": ("text", "data security (RCW 43.386.020(2)(f))"),
    "policy.sharing": ("text", "data sharing (RCW 43.386.020(2)(f); OMC 9.64)"),
    "policy.error_rate_plan": ("text", "plan for when an error rate is 1% or more (RCW 43.386.020(2)(g))"),
    "policy.timezone": ("text", "IANA time zone of the working hours (e.g. America/Los_Angeles)"),
    "policy.working_hours": ("text", "working hours, local time, 'HH:MM-HH:MM' on quarter hours"),
    "policy.working_days": ("texts", "working days: Mon, Tue, Wed, Thu, Fri, Sat, Sun"),
    "policy.repeated_subject_searches": ("int", "flag a subject returned by at least this many searches (default 3)"),
    "testing.description": ("text", "how the system is tested (RCW 43.386.020(2)(g), 43.386.030)"),
    "training.description": ("text", "training of the people who use it (RCW 43.386.020(2)(h), 43.386.070)"),
    "training.sessions[].date": ("date", "date of a training session"),
    "training.sessions[].audience": ("text", "who attended"),
    "training.sessions[].summary": ("text", "what it covered"),
    "community.description": ("text", "how the community was consulted (RCW 43.386.020(4)-(5))"),
    "community.meetings[].date": ("date", "date of a community meeting"),
    "community.meetings[].place": ("text", "where"),
    "community.meetings[].summary": ("text", "what was said and done"),
    "oversight.authorisation": ("text", "how each use is authorised (EU AI Act Art. 26(10): within 48 hours)"),
    "oversight.authorities": ("text", "authorities the annual report goes to (EU AI Act Art. 26(10))"),
    "oversight.deployment_areas": ("texts", "where the system is deployed (OMC 9.64 annual report)"),
    "oversight.audits": ("text", "audits made, and violations found (OMC 9.64)"),
    "oversight.breaches": ("text", "data breaches or unauthorised access (OMC 9.64)"),
    "oversight.effectiveness": ("text", "how effectiveness is judged (OMC 9.64)"),
    "complaints.received": ("int", "complaints received in the period (OMC 9.64)"),
    "complaints.summary": ("text", "what the complaints were about and how they were handled"),
    "costs.currency": ("text", "currency of the amounts (e.g. USD)"),
    "costs.items[].item": ("text", "a cost item (OMC 9.64: annual costs)"),
    "costs.items[].amount": ("number", "its amount"),
    "costs.funding": ("text", "source of funding"),
}

_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _check(key: str, kind: str, value: Any) -> Any:
    if kind == "text":
        if not isinstance(value, str):
            raise ReportConfigError(f"report.toml: {key} must be a string, got {type(value).__name__}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ReportConfigError(f"report.toml: {key} must be a whole number >= 0, got {value!r}")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReportConfigError(f"report.toml: {key} must be a number, got {value!r}")
        return float(value)
    if kind == "texts":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ReportConfigError(f"report.toml: {key} must be a list of strings, got {value!r}")
        return tuple(value)
    if kind == "date":
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise ReportConfigError(f"report.toml: {key} must be a TOML date like 2026-03-14, got {value!r}")
        return value.isoformat()
    raise AssertionError(kind)  # pragma: no cover


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Check every key and value against :data:`SCHEMA`; return dotted key -> value (items as tuples of dicts)."""
    out: dict[str, Any] = {}
    for table, content in data.items():
        if not isinstance(content, dict):
            raise ReportConfigError(f"report.toml: {table} must be a table ([{table}]), got {type(content).__name__}")
        for name, value in content.items():
            key = f"{table}.{name}"
            fields = {k.split("[].")[1]: v for k, v in SCHEMA.items() if k.startswith(key + "[].")}
            if fields:
                if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                    raise ReportConfigError(f"report.toml: {key} must be an array of tables ([[{key}]])")
                items = []
                for i, item in enumerate(value):
                    unknown = sorted(set(item) - set(fields))
                    if unknown:
                        raise ReportConfigError(f"report.toml: unknown key {key}[{i}].{unknown[0]}; known: "
                                                f"{', '.join(sorted(fields))}")
                    items.append({f: _check(f"{key}[{i}].{f}", fields[f][0], v) for f, v in item.items()})
                out[key] = tuple(items)
            elif key in SCHEMA:
                out[key] = _check(key, SCHEMA[key][0], value)
            else:
                raise ReportConfigError(f"report.toml: unknown key {key} (see docs/report.toml for every key)")
    return out


@dataclass(frozen=True)
class ReportConfig:
    """The validated ``report.toml``: dotted key -> value; absent keys are absent (printed as missing)."""

    values: Mapping[str, Any]
    """Dotted key -> value (strings, numbers, tuples of strings, tuples of item dicts)."""
    source: str = "report.toml"
    """Where it came from (a file name, never a path of this machine)."""

    def get(self, key: str) -> Any:
        """Return the value of ``key``, or ``None`` when the file does not give it."""
        return self.values.get(key)

    @property
    def timezone(self) -> zoneinfo.ZoneInfo | None:
        """The working hours' time zone (``None`` when not given)."""
        name = self.get("policy.timezone")
        return None if name is None else zoneinfo.ZoneInfo(name)

    @property
    def working_hours(self) -> tuple[int, int] | None:
        """Working hours as minutes after midnight ``(start, end)``, or ``None``."""
        text = self.get("policy.working_hours")
        if text is None:
            return None
        m = _TIME.match(text)
        assert m is not None  # validated on load
        return int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])

    @property
    def working_days(self) -> tuple[int, ...]:
        """Working weekdays (0 = Monday); Monday to Friday unless given."""
        days = self.get("policy.working_days") or DAYS[:5]
        return tuple(DAYS.index(d) for d in days)

    @property
    def repeated_subject_searches(self) -> int:
        """Searches returning one subject from which the report flags it (default 3)."""
        value = self.get("policy.repeated_subject_searches")
        return 3 if value is None else int(value)


def _semantic_checks(values: Mapping[str, Any]) -> None:
    tz = values.get("policy.timezone")
    if tz is not None:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise ReportConfigError(f"report.toml: policy.timezone {tz!r} is not an IANA time zone "
                                    "(e.g. America/Los_Angeles)") from err
    hours = values.get("policy.working_hours")
    if hours is not None:
        m = _TIME.match(hours)
        if m is None or int(m[1]) * 60 + int(m[2]) >= int(m[3]) * 60 + int(m[4]):
            raise ReportConfigError(f"report.toml: policy.working_hours must be 'HH:MM-HH:MM' with the start "
                                    f"before the end (e.g. '07:00-19:00'), got {hours!r}")
        if m is not None and (int(m[2]) % 15 or int(m[4]) % 15):
            raise ReportConfigError(f"report.toml: policy.working_hours starts and ends on a quarter hour (:00, :15, "
                                    f":30 or :45), got {hours!r}")
        if tz is None:
            raise ReportConfigError("report.toml: policy.working_hours needs policy.timezone (the hours' time zone)")
    for day in values.get("policy.working_days") or ():
        if day not in DAYS:
            raise ReportConfigError(f"report.toml: policy.working_days holds {day!r}; use {', '.join(DAYS)}")
    decisions = values.get("purpose.decisions")
    if decisions is not None and decisions not in ("final", "support"):
        raise ReportConfigError(f"report.toml: purpose.decisions must be 'final' or 'support', got {decisions!r}")
    repeated = values.get("policy.repeated_subject_searches")
    if repeated is not None and repeated < 2:
        raise ReportConfigError("report.toml: policy.repeated_subject_searches must be at least 2")


def parse_report_config(text: str, source: str = "report.toml") -> ReportConfig:
    """Parse and validate ``report.toml`` text.

    Raises
    ------
    ReportConfigError
        Not TOML, or a key that is unknown or of the wrong type (the message names it).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ReportConfigError(f"{source} is not valid TOML: {err}") from err
    values = _flatten(data)
    _semantic_checks(values)
    return ReportConfig(values, source)


def load_report_config(path: str | Path | None) -> ReportConfig:
    """Read ``report.toml`` (``None``: no file; every deployer item is then printed as missing).

    Raises
    ------
    ReportConfigError
        The file cannot be read, or does not validate.
    """
    if path is None:
        return ReportConfig({}, "no report.toml given")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ReportConfigError(f"cannot read {file.name}: {err}") from err
    return parse_report_config(text, file.name)
