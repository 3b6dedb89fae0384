"""blackbox.yml is read as blackbox_exporter reads it, or refused in one line naming file:line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from probes.blackbox import icmp as icmp_module
from probes.blackbox.config import accepts, compile_regexp, load_blackbox, parse_blackbox
from probes.blackbox.run import probe_timeout
from probes.blackbox.tcp import expand, split_host_port

ROOT = Path(__file__).resolve().parents[2]


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_blackbox(text, "blackbox.yml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_debians_example_modules_that_readygate_implements_load_with_blackbox_defaults() -> None:
    modules = parse_blackbox("""
modules:
  http_2xx:
    prober: http
  http_post_2xx:
    prober: http
    http:
      method: POST
  tcp_connect:
    prober: tcp
  ssh_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^SSH-2.0-"
      - send: "SSH-2.0-blackbox-ssh-check"
  irc_banner:
    prober: tcp
    tcp:
      query_response:
      - send: "NICK prober"
      - expect: "PING :([^ ]+)"
        send: "PONG ${1}"
  icmp_ttl5:
    prober: icmp
    timeout: 5s
    icmp:
      ttl: 5
""")
    http = modules["http_2xx"].http
    assert (http.preferred_ip_protocol, http.ip_protocol_fallback, http.follow) == \
        ("ip6", True, True)
    assert modules["http_2xx"].timeout == 0.0 and modules["icmp_ttl5"].timeout == 5.0
    assert modules["irc_banner"].tcp.query_response[1].send == "PONG ${1}"


@pytest.mark.parametrize(("yaml", "wanted"), [
    ("modules:\n  m:\n    prober: http\n    http:\n      proxy_url: http://proxy:3128\n",
     "blackbox.yml:5 modules.m.http.proxy_url: 'proxy_url' is a blackbox_exporter option "
     "readygate does not support (probing through a proxy is not implemented)"),
    ("modules:\n  m:\n    prober: grpc\n",
     "blackbox.yml:3 modules.m.prober: prober 'grpc' is not supported"),
    ("modules:\n  m:\n    prober: http\n    http:\n      enable_http2: true\n",
     "blackbox.yml:5 modules.m.http.enable_http2: 'enable_http2' is a blackbox_exporter "
     "option readygate does not support (readygate's probes speak HTTP/1.1"),
    ("modules:\n  m:\n    prober: http\n    http:\n      oauth2: {client_id: x}\n",
     "blackbox.yml:5 modules.m.http.oauth2:"),
    ("modules:\n  m:\n    prober: http\n    http:\n      valid_http_versions: [HTTP/2.0]\n",
     "blackbox.yml:5 modules.m.http.valid_http_versions: readygate's probes speak HTTP/1.1"),
    ("modules:\n  m:\n    prober: http\n    http:\n      valid_status_code: [200]\n",
     "blackbox.yml:5 modules.m.http.valid_status_code: unknown key 'valid_status_code' "
     "(did you mean 'valid_status_codes'?)"),
    ("modules:\n  m:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: "
     "['(?<=x)a']\n",
     "blackbox.yml:5 modules.m.http.fail_if_body_matches_regexp[0]: could not compile "
     "regular expression"),
    ("modules:\n  m:\n    prober: http\n    timeout: 5\n",
     "blackbox.yml:4 modules.m.timeout: a duration needs a unit"),
    ("modules:\n  m:\n    prober: dns\n    dns: {query_type: A}\n",
     "blackbox.yml:4 modules.m.dns.query_name: required key is missing"),
    ("modules:\n  m:\n    prober: dns\n    dns: {query_name: x, query_type: NOPE}\n",
     "blackbox.yml:4 modules.m.dns.query_type: query type 'NOPE' is not valid"),
    ("modules:\n  m:\n    prober: http\n    http:\n      tls_config: {ca_file: nowhere.pem}\n",
     "blackbox.yml:5 modules.m.http.tls_config.ca_file: file 'nowhere.pem' not found"),
    ("modules:\n  m:\n    prober: http\n    http:\n      basic_auth: {username: a, "
     "password: abc}\n",
     "blackbox.yml:5 modules.m.http.basic_auth.password: secret is shorter than 4"),
    ("modules:\n  m:\n    prober: http\n    http:\n      bearer_token: abcdef\n"
     "      basic_auth: {username: a, password: abcdef}\n",
     "at most one of basic_auth, authorization, bearer_token"),
    ("modules:\n  m:\n    prober: icmp\n    icmp: {ttl: 300}\n",
     "blackbox.yml:4 modules.m.icmp.ttl:"),
    ("modules:\n  m:\n    prober: http\n    http:\n      compression: gzip\n"
     "      headers: {Accept-Encoding: br}\n",
     'invalid configuration "Accept-Encoding: br", "compression: gzip"'),
])
def test_what_readygate_cannot_do_is_refused_by_file_line_and_key(yaml: str, wanted: str
                                                                  ) -> None:
    assert wanted in error(yaml)


def test_relative_files_are_relative_to_the_blackbox_yml(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("a-bearer-token\n")
    config = tmp_path / "blackbox.yml"
    config.write_text("modules:\n  m:\n    prober: http\n    http:\n"
                      "      bearer_token_file: token\n")
    module = load_blackbox(config)["m"]
    assert module.http.bearer_token_file == str(tmp_path / "token")


def test_go_durations_sizes_and_the_probe_timeout_rule() -> None:
    modules = parse_blackbox("modules:\n  a: {prober: http, timeout: 1m30s}\n"
                             "  b: {prober: http, timeout: 250ms}\n  c: {prober: http}\n"
                             "  d: {prober: http, http: {body_size_limit: 1MB}}\n")
    assert modules["a"].timeout == 90.0 and modules["b"].timeout == 0.25
    assert modules["d"].http.body_size_limit == 1024 * 1024
    # the scrape's timeout minus 0.5 s, unless the module's is shorter; 120 s without one
    assert probe_timeout(modules["a"], "10") == 9.5
    assert probe_timeout(modules["b"], "10") == 0.25
    assert probe_timeout(modules["c"], None) == 119.5
    with pytest.raises(ValueError):
        probe_timeout(modules["c"], "soon")


def test_go_template_expansion_of_query_response_sends() -> None:
    match = compile_regexp(r"^PING :(?P<token>\w+) (\d+)").search("PING :abc 42")
    assert expand("PONG ${1} $2 $token ${token}x $$ $ $9", match) == "PONG abc 42 abc abcx $ $ "
    assert expand("$1x", match) == ""  # Go reads the name "1x": no such group
    assert split_host_port("[::1]:53") == ("::1", "53")
    with pytest.raises(ValueError):
        split_host_port("127.0.0.1")


def test_accept_encoding_must_admit_the_expected_compression() -> None:
    assert accepts("gzip, br;q=0.5", "br")
    assert not accepts("gzip, br;q=0", "br")
    assert accepts("*", "deflate") and accepts("", "gzip")


def test_icmp_without_raw_or_ping_sockets_names_the_capability(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(socket, "socket", refuse)  # icmp_problem opens through this module
    problem = icmp_module.icmp_problem()
    assert problem is not None
    assert "CAP_NET_RAW" in problem and "net.ipv4.ping_group_range" in problem


def test_probe_serve_refuses_a_bad_blackbox_yml_with_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "blackbox.yml"
    config.write_text("modules:\n  http_2xx:\n    prober: http\n    http:\n"
                      "      no_proxy: localhost\n")
    out = subprocess.run([sys.executable, "-m", "readygate.cli", "probe", "serve",
                          "--blackbox-config", str(config), "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 3, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines == [f"readygate: {config}:5 modules.http_2xx.http.no_proxy: 'no_proxy' is a "
                     "blackbox_exporter option readygate does not support (probing through a "
                     "proxy is not implemented)"]
