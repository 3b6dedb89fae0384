"""junit.xml: one test suite per phase, one test case per check (a pure renderer).

CI test reporters show JUnit, so each check becomes a test case: ``fail`` is a
``<failure>``, ``error`` (readygate could not look) an ``<error>``, ``skipped`` a
``<skipped>``. A failed *warning* check is still a ``<failure type="warning">``: hiding it
would be a lie, and the verdict (in the suite properties and the exit code) says it
does not block.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from reports.model import CheckResult, Report, summarize

# XML 1.0 cannot carry most control characters, even escaped: drop them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: object) -> str:
    return _INVALID_XML.sub("", str(text))


def _time(c: CheckResult) -> str:
    return f"{c.latency_s:.3f}" if c.latency_s is not None else "0"


def _detail(c: CheckResult) -> str:
    lines = [c.message, f"signal: {c.signal}  severity: {c.severity}  phase: {c.phase}",
             f"anchor: {c.anchor or '-'}  latency: "
             f"{'-' if c.latency_s is None else f'{c.latency_s:.3f}s'}  deadline: "
             f"{'-' if c.deadline_s is None else f'{c.deadline_s:g}s'}"]
    if c.evidence:
        lines += ["evidence:", json.dumps(c.evidence, indent=2, default=str)]
    return "\n".join(lines)


def render_junit(report: Report) -> str:
    """junit.xml for CI test reporters (the common Jenkins/Ant JUnit dialect)."""
    counts = summarize(report.checks)
    duration = report.finished_at - report.started_at
    root = ET.Element("testsuites", {
        "name": _x(f"readygate {report.gate}"), "tests": str(len(report.checks)),
        "failures": str(counts["fail"]), "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]), "time": f"{duration:.3f}"})
    phases: dict[str, list[CheckResult]] = {}
    for c in report.checks:
        phases.setdefault(c.phase or "checks", []).append(c)
    import datetime as dt
    stamp = dt.datetime.fromtimestamp(report.started_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for phase, checks in phases.items():
        n = summarize(checks)
        suite = ET.SubElement(root, "testsuite", {
            "name": _x(f"{report.gate}.{phase}"), "tests": str(len(checks)),
            "failures": str(n["fail"]), "errors": str(n["error"]),
            "skipped": str(n["skipped"]),
            "time": f"{sum(c.latency_s or 0.0 for c in checks):.3f}",
            "timestamp": stamp, "hostname": _x(report.target)})
        props = ET.SubElement(suite, "properties")
        for key, value in (("gate", report.gate), ("target", report.target),
                           ("verdict", report.verdict), ("phase", phase),
                           ("partial", str(report.partial).lower())):
            ET.SubElement(props, "property", {"name": key, "value": _x(value)})
        for c in checks:
            case = ET.SubElement(suite, "testcase", {
                "name": _x(c.name), "classname": _x(f"readygate.{report.gate}.{phase}"),
                "time": _time(c)})
            if c.status == "fail":
                el = ET.SubElement(case, "failure", {
                    "message": _x(c.message),
                    "type": "warning" if c.severity == "warning" else c.signal})
                el.text = _x(_detail(c))
            elif c.status == "error":
                el = ET.SubElement(case, "error", {"message": _x(c.message),
                                                   "type": "could_not_look"})
                el.text = _x(_detail(c))
            elif c.status == "skipped":
                ET.SubElement(case, "skipped", {"message": _x(c.message)})
            else:
                out = ET.SubElement(case, "system-out")
                out.text = _x(_detail(c))
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
