"""The "Test these options on your servers" form, with and without JavaScript.

One form, posted back with a button that says what to do: ``propose`` (targets
for the hosts typed), ``add`` (one more row), ``remove=N`` or ``run``. htmx posts
it the same way and swaps the panel in place; without JavaScript the answer is
the panel's own page. Rows are parallel lists (``url``, ``method``, ``sealed``).

A password typed into a target never goes back to the browser: the row shows
the URL masked and carries the full URL sealed (Fernet, an hour at most) in a
hidden field, which the server alone can open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from probes import credentials, services
from probes.guard import MASK, mask_url
from probes.targets import method_for, proposals, split_hosts

FORM_SEAL_TTL_S = 3600
MAX_ROWS = services.MAX_TARGETS


@dataclass
class Row:
    url: str  # as shown: masked when it carries a secret
    method: str = ""
    sealed: str = ""
    label: str = ""

    @property
    def full_url(self) -> str:
        """The URL with its secret, when the sealed copy matches what is shown."""
        if self.sealed and MASK in self.url:
            try:
                url = credentials.unseal(self.sealed, ttl=FORM_SEAL_TTL_S)
            except credentials.CredentialsLost:
                return self.url
            if mask_url(url) == self.url:
                return url
        return self.url


@dataclass
class Plan:
    hosts: str = ""
    rows: list[Row] = field(default_factory=list)
    vantage_points: list[str] = field(default_factory=list)
    count: str = str(services.DEFAULT_COUNT)
    interval: str = f"{services.DEFAULT_INTERVAL_MS:g}"
    timeout: str = f"{services.DEFAULT_TIMEOUT_S:g}"
    throughput: bool = False
    insecure: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def can_add(self) -> bool:
        return len(self.rows) < MAX_ROWS

    def row_errors(self) -> list[tuple[Row, str]]:
        return [(row, self.errors.get(f"targets[{i}]", "")) for i, row in enumerate(self.rows)]


def _labels(ranking: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(m.get("method")): str(m.get("label") or m.get("method")) for m in ranking}


def make_row(url: str, method: str, ranking: Sequence[Mapping[str, Any]]) -> Row:
    """A row for ``url``: shown masked, with its secret sealed beside it."""
    shown = mask_url(url)
    sealed = credentials.seal(url) if shown != url else ""
    return Row(url=shown, method=method, sealed=sealed, label=_labels(ranking).get(method, method))


def plan_initial(*, default_points: list[str]) -> Plan:
    return Plan(vantage_points=default_points)


def plan_from_post(data: QueryDict, *, ranking: Sequence[Mapping[str, Any]]) -> Plan:
    """The plan as posted, rows kept in order (blank ones dropped)."""
    urls = data.getlist("url")
    methods = data.getlist("method")
    sealed = data.getlist("sealed")
    labels = _labels(ranking)
    rows: list[Row] = []
    for index, url in enumerate(urls[: MAX_ROWS + 1]):
        method = methods[index] if index < len(methods) else ""
        seal = sealed[index] if index < len(sealed) else ""
        url = url.strip()
        if not url and data.get("action") != "add":
            continue
        rows.append(Row(url=url, method=method, sealed=seal, label=labels.get(method, "")))
    return Plan(
        hosts=data.get("hosts", "")[:500],
        rows=rows,
        vantage_points=[v for v in data.getlist("vantage_points") if v][:10],
        count=data.get("count", "")[:10],
        interval=data.get("interval", "")[:10],
        timeout=data.get("timeout", "")[:10],
        throughput=data.get("throughput") == "on",
        insecure=data.get("insecure") == "on",
    )


def apply_action(plan: Plan, data: QueryDict, *, ranking: Sequence[Mapping[str, Any]]) -> str:
    """Change the plan as the pressed button asks; returns the action ("run" to run)."""
    remove = data.get("remove")
    if remove is not None:
        with contextlib.suppress(ValueError, IndexError):
            del plan.rows[int(remove)]
        return "remove"
    action = data.get("action", "")
    if action == "propose":
        try:
            hosts = split_hosts(plan.hosts)
        except ValueError as exc:
            plan.errors["hosts"] = str(exc)
            return action
        if not hosts:
            plan.errors["hosts"] = "type the host name or address of your server"
            return action
        found = proposals(ranking, hosts)
        # Rows already typed stay; proposals for the same URL are not added twice.
        have = {row.url for row in plan.rows if row.url}
        plan.rows = [row for row in plan.rows if row.url]
        for proposal in found:
            if proposal.url not in have and len(plan.rows) < MAX_ROWS:
                plan.rows.append(make_row(proposal.url, proposal.method, ranking))
        if len(found) + len(have) > MAX_ROWS:
            plan.message = f"A run has at most {MAX_ROWS} targets: the rest were left out."
        return action
    if action == "add":
        plan.rows = [row for row in plan.rows if row.url]
        if len(plan.rows) < MAX_ROWS:
            plan.rows.append(Row(url=""))
        return action
    if action == "run":
        plan.rows = [row for row in plan.rows if row.url]
        # A URL edited into another scheme keeps its method only if it still fits.
        for row in plan.rows:
            if "://" in row.url:
                scheme = row.url.split("://", 1)[0].lower()
                row.method = method_for(scheme, ranking, row.method or None)[0]
        return action
    return ""


def _float(text: str, default: float) -> Any:
    text = text.strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        return text  # the service names the field and what it accepts


def run_arguments(plan: Plan) -> dict[str, Any]:
    """The plan as :func:`probes.services.run_create` arguments."""
    count: Any = _float(plan.count, services.DEFAULT_COUNT)
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    return {
        "targets": [services.TargetSpec(url=row.full_url, method=row.method) for row in plan.rows],
        "count": count,
        "interval_ms": _float(plan.interval, services.DEFAULT_INTERVAL_MS),
        "timeout_s": _float(plan.timeout, services.DEFAULT_TIMEOUT_S),
        "vantage_points": plan.vantage_points,
        "throughput": plan.throughput,
        "insecure": plan.insecure,
    }


def keep_secrets(plan: Plan, ranking: Sequence[Mapping[str, Any]]) -> None:
    """Before the plan is shown again: any row typed with a password is masked and sealed."""
    for index, row in enumerate(plan.rows):
        full = row.full_url
        if mask_url(full) != full:
            plan.rows[index] = Row(
                url=mask_url(full),
                method=row.method,
                sealed=credentials.seal(full),
                label=row.label or _labels(ranking).get(row.method, ""),
            )
