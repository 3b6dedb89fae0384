"""The series one blackbox-style probe answers, and their text exposition.

Every series blackbox_exporter answers is a gauge; a probe answers a fresh set of them,
families in name order (as Go's registry gathers them). The HELP texts are readygate's own
words; names, types and label sets are blackbox_exporter's.
"""

from __future__ import annotations

import math

from probes.model import TlsFacts

Labels = tuple[tuple[str, str], ...]

HELP: dict[str, str] = {
    "probe_success": "1 if the probe succeeded, else 0.",
    "probe_duration_seconds": "Seconds the whole probe took.",
    "probe_dns_lookup_time_seconds": "Seconds spent resolving the target's name.",
    "probe_ip_protocol": "IP version of the probed address (4 or 6; 0: none).",
    "probe_ip_addr_hash": "FNV-1a hash of the probed address; changes when the address does.",
    "probe_failed_due_to_regex": "1 if a configured regular expression failed the probe.",
    "probe_http_duration_seconds": "Seconds per HTTP phase, summed over redirects.",
    "probe_http_content_length": "Content-Length of the final response (-1: unknown).",
    "probe_http_uncompressed_body_length": "Bytes of the final response body after decoding.",
    "probe_http_redirects": "Redirects the probe went through.",
    "probe_http_ssl": "1 if the final response came over TLS.",
    "probe_http_status_code": "Status code of the final response (0: none).",
    "probe_http_version": "HTTP version of the final response (0: none).",
    "probe_http_last_modified_timestamp_seconds": "Last-Modified of the response (Unix time).",
    "probe_ssl_earliest_cert_expiry": "Earliest expiry of the certificates the server sent "
                                      "(Unix time).",
    "probe_ssl_last_chain_expiry_timestamp_seconds": "Expiry of the verified chain: its "
                                                     "earliest certificate (Unix time).",
    "probe_ssl_last_chain_info": "The server's leaf certificate, as labels.",
    "probe_tls_version_info": "The TLS version negotiated, as a label.",
    "probe_dns_duration_seconds": "Seconds per DNS probe phase.",
    "probe_dns_answer_rrs": "Records in the answer section.",
    "probe_dns_authority_rrs": "Records in the authority section.",
    "probe_dns_additional_rrs": "Records in the additional section.",
    "probe_dns_query_succeeded": "1 if the DNS query got an answer.",
    "probe_dns_serial": "Serial of the zone (SOA queries).",
    "probe_icmp_duration_seconds": "Seconds per ICMP probe phase.",
    "probe_icmp_reply_hop_limit": "Hop limit (IPv4 TTL) of the echo reply.",
}

_HEADERS: dict[str, str] = {}


def _header(name: str) -> str:
    header = _HEADERS.get(name)
    if header is None:
        doc = HELP.get(name, name).replace("\\", r"\\").replace("\n", r"\n")
        header = _HEADERS[name] = f"# HELP {name} {doc}\n# TYPE {name} gauge\n"
    return header


def number(value: float) -> str:
    """A sample value as the text format writes it (integers without a fraction)."""
    if value.is_integer():
        if -1e15 < value < 1e15:
            return str(int(value))
        return repr(value)
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


_PREFIXES: dict[tuple[str, Labels], str] = {}


def _prefix(name: str, labels: Labels) -> str:
    """``name{labels} `` (kept for the label sets every probe repeats: phases, versions)."""
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        prefix = f"{name}{{{inner}}} "
    else:
        prefix = f"{name} "
    if len(_PREFIXES) < 4096:  # certificate labels vary by target: keep the cache bounded
        _PREFIXES[(name, labels)] = prefix
    return prefix


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


class Series:
    """Gauges of one probe: name -> label set -> value."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, dict[Labels, float]] = {}

    def set(self, name: str, value: float, labels: Labels = ()) -> None:
        """Set a gauge (creating it)."""
        family = self.values.get(name)
        if family is None:
            family = self.values[name] = {}
        family[labels] = value

    def add(self, name: str, value: float, labels: Labels = ()) -> None:
        """Add to a gauge (creating it at 0)."""
        family = self.values.get(name)
        if family is None:
            family = self.values[name] = {}
        family[labels] = family.get(labels, 0.0) + value

    def get(self, name: str, labels: Labels = ()) -> float | None:
        """A gauge's value, or None when it was never set."""
        family = self.values.get(name)
        return None if family is None else family.get(labels)

    def render(self) -> str:
        """The text exposition, families in name order."""
        out: list[str] = []
        for name in sorted(self.values):
            out.append(_header(name))
            family = self.values[name]
            for labels in sorted(family) if len(family) > 1 else family:
                prefix = _PREFIXES.get((name, labels))
                if prefix is None:
                    prefix = _prefix(name, labels)
                out.append(prefix)
                out.append(number(family[labels]))
                out.append("\n")
        return "".join(out)


def set_tls_series(series: Series, facts: TlsFacts) -> None:
    """blackbox's four ``probe_ssl_*`` / ``probe_tls_version_info`` series."""
    series.set("probe_ssl_earliest_cert_expiry", float(int(facts.earliest_expiry)))
    series.set("probe_tls_version_info", 1.0, (("version", facts.version),))
    series.set("probe_ssl_last_chain_expiry_timestamp_seconds", float(int(facts.chain_expiry)))
    series.set("probe_ssl_last_chain_info", 1.0, (
        ("fingerprint_sha256", facts.fingerprint), ("issuer", facts.issuer),
        ("subject", facts.subject), ("subjectalternative", facts.sans)))
