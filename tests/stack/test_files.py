"""The stack's config model and the files it makes: prometheus.yml, the merged alertmanager.yml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from readygate.config import parse_config
from stack.config import ScrapeJob, StackSettings, parse_target
from stack.files import (
    RECEIVER_NAME,
    SINK_WEBHOOK_PLACEHOLDER,
    prometheus_config_text,
    scrape_config,
    sink_alertmanager_config,
    with_sink_route,
)
from stack.tools import tool_error

needs_binaries = pytest.mark.skipif(
    any(shutil.which(b) is None for b in ("promtool", "amtool")),
    reason="needs the prometheus and prometheus-alertmanager Debian packages")


def job(**fields: object) -> ScrapeJob:
    return ScrapeJob.model_validate({"job": "app", "targets": ["127.0.0.1:8000"], **fields})


# -- targets ---------------------------------------------------------------------------


def test_host_port_target_is_kept_as_it_is() -> None:
    assert parse_target("127.0.0.1:8000").address == "127.0.0.1:8000"
    assert parse_target("[::1]:9100").address == "[::1]:9100"


def test_url_target_says_scheme_path_and_params() -> None:
    target = parse_target("https://app.internal/custom/metrics?module=x")
    assert (target.address, target.scheme, target.metrics_path, target.params) == (
        "app.internal:443", "https", "/custom/metrics", {"module": "x"})


@pytest.mark.parametrize("text", ["localhost", "127.0.0.1:0", "127.0.0.1:99999", "ftp://x:1",
                                  "http://", "http://h:port/"])
def test_target_syntax_errors_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text)


def test_a_target_url_with_a_password_is_refused_without_echoing_it() -> None:
    text = ("target:\n  name: x\nstack:\n  scrape:\n    - job: app\n"
            "      targets: ['http://u:hunter2@127.0.0.1:8000/metrics']\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml")
    assert "hunter2" not in str(info.value)
    assert str(info.value).startswith("c.yaml:6 stack.scrape[0].targets: [0] a URL with "
                                      "credentials")


def test_jobs_are_unique_and_auth_is_one_kind() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        StackSettings.model_validate({"scrape": [{"job": "a", "targets": ["h:1"]},
                                                 {"job": "a", "targets": ["h:2"]}]})
    with pytest.raises(ValueError, match="exclude each other"):
        job(basic_auth={"username": "u", "password": "p"}, bearer_token="t")


def test_stack_secrets_are_redacted_config_secrets() -> None:
    text = ("stack:\n  scrape:\n    - job: a\n      targets: ['h:1']\n"
            "      basic_auth: {username: u, password: pw-Basic-1}\n"
            "    - job: b\n      targets: ['h:2']\n      bearer_token: tok-Bearer-2\n")
    config = parse_config(text, "c.yaml")
    assert {"pw-Basic-1", "tok-Bearer-2"} <= set(config.secrets())
    assert "pw-Basic-1" not in repr(config.stack)


# -- prometheus.yml --------------------------------------------------------------------


def test_scrape_config_keeps_secrets_in_files_not_in_the_yaml() -> None:
    config, secrets = scrape_config(job(basic_auth={"username": "u", "password": "pw-S3cret"},
                                        scrape_interval_s=0.5))
    assert config["basic_auth"] == {"username": "u", "password_file": "secrets/app.password"}
    assert secrets == {"secrets/app.password": "pw-S3cret"}
    assert "pw-S3cret" not in yaml.safe_dump(config)
    assert (config["scrape_interval"], config["scrape_timeout"]) == ("500ms", "500ms")
    config, secrets = scrape_config(job(bearer_token="tok-S3cret"))
    assert config["authorization"] == {"type": "Bearer",
                                       "credentials_file": "secrets/app.token"}
    assert "tok-S3cret" not in yaml.safe_dump(config)


def test_url_targets_become_groups_with_their_scheme_and_path() -> None:
    config, _ = scrape_config(job(targets=["127.0.0.1:1", "127.0.0.1:2",
                                           "https://127.0.0.1:3/m?x=1"],
                                  labels={"service": "app"}))
    assert config["static_configs"] == [
        {"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {"service": "app"}},
        {"targets": ["127.0.0.1:3"], "labels": {
            "__metrics_path__": "/m", "__param_x": "1", "__scheme__": "https",
            "service": "app"}}]


def test_tls_files_become_absolute_and_an_encrypted_key_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config, _ = scrape_config(job(tls={"ca_file": "ca.pem", "cert_file": "c.pem",
                                       "key_file": "k.pem", "server_name": "app.internal"}))
    assert config["tls_config"] == {
        "insecure_skip_verify": False, "ca_file": str(tmp_path / "ca.pem"),
        "cert_file": str(tmp_path / "c.pem"), "key_file": str(tmp_path / "k.pem"),
        "server_name": "app.internal"}
    with pytest.raises(ValueError, match="Prometheus cannot read an encrypted key"):
        job(tls={"cert_file": "c.pem", "key_file": "k.pem", "key_password": "x"})


@needs_binaries
def test_generated_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    jobs, secrets = [], {}
    for j in (job(basic_auth={"username": "u", "password": "p"}),
              job(job="other", targets=["https://127.0.0.1:9/x"], bearer_token="t",
                  tls={"insecure_skip_verify": True}, scrape_interval_s=30)):
        config, more = scrape_config(j)
        jobs.append(config)
        secrets.update(more)
    for name, value in secrets.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(value)
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "alertmanager.json").write_text("[]")
    (tmp_path / "prometheus.yml").write_text(prometheus_config_text(jobs=jobs, rule_files=[]))
    result = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


# -- alertmanager.yml ------------------------------------------------------------------


USER_AM = """\
templates: [tmpl/*.tmpl]
route:
  receiver: team-default
  group_by: [alertname]
  group_wait: 30s
  routes:
    - receiver: team-pager
      matchers: ['severity="page"']
receivers:
  - name: team-default
  - name: team-pager
    webhook_configs:
      - url: http://127.0.0.1:9/hook
        http_config:
          authorization: {credentials_file: token.txt}
"""


def routes(config: Path, *labels: str) -> str:
    result = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={config}",
                             *labels], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip()


@needs_binaries
def test_sink_route_adds_the_sink_and_keeps_every_user_receiver(tmp_path: Path) -> None:
    """Alerts reach the sink AND the user's receiver: routed ones and fallen-through ones."""
    user = tmp_path / "am.yml"
    user.write_text(USER_AM)
    merged = tmp_path / "merged.yml"
    merged.write_text(with_sink_route(USER_AM, str(user)))
    check = subprocess.run(["amtool", "check-config", str(merged)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert routes(user, "severity=page", "alertname=X") == "team-pager"
    assert routes(merged, "severity=page", "alertname=X") == f"{RECEIVER_NAME},team-pager"
    assert routes(user, "alertname=Y") == "team-default"
    assert routes(merged, "alertname=Y") == f"{RECEIVER_NAME},team-default"


def test_sink_route_keeps_the_users_timings_and_makes_files_absolute(tmp_path: Path) -> None:
    merged = yaml.safe_load(with_sink_route(USER_AM, str(tmp_path / "am.yml"),
                                            group_interval_s=2))
    sink_route, user_route = merged["route"]["routes"]
    assert sink_route == {"receiver": RECEIVER_NAME, "group_by": ["..."], "group_wait": "0s",
                          "group_interval": "2s", "repeat_interval": "1h", "continue": True}
    assert user_route["receiver"] == "team-default" and user_route["group_wait"] == "30s"
    assert merged["route"]["group_wait"] == "30s"  # what the user's tree inherits
    assert merged["templates"] == [str(tmp_path / "tmpl/*.tmpl")]
    http = merged["receivers"][1]["webhook_configs"][0]["http_config"]
    assert http["authorization"]["credentials_file"] == str(tmp_path / "token.txt")
    assert merged["receivers"][-1] == {"name": RECEIVER_NAME, "webhook_configs": [
        {"url": SINK_WEBHOOK_PLACEHOLDER, "send_resolved": True}]}


def test_the_sink_receiver_name_is_reserved() -> None:
    text = "route: {receiver: readygate-sink}\nreceivers: [{name: readygate-sink}]\n"
    with pytest.raises(ConfigError, match=r"am\.yml stack\.alertmanager_config: receiver name "
                                          r"'readygate-sink' is reserved"):
        with_sink_route(text, "am.yml")


def test_without_a_user_config_every_alert_goes_to_the_sink_alone() -> None:
    config = yaml.safe_load(sink_alertmanager_config(group_interval_s=1))
    assert config["route"]["receiver"] == RECEIVER_NAME
    assert config["route"]["group_by"] == ["..."] and config["route"]["group_wait"] == "0s"


# -- promtool/amtool output as one line --------------------------------------------------


def test_tool_error_names_file_and_line() -> None:
    promtool = ('Checking a.yml\n  SUCCESS: 1 rules found\n\nChecking rules/b.yml\n'
                '  FAILED:\nrules/b.yml: 5:15: group "g", rule 1, "X": could not parse '
                'expression\n')
    error = tool_error(promtool, "alert rules", ["a.yml", "rules/b.yml"], key="stack.rules")
    assert str(error) == ('rules/b.yml:5 stack.rules: alert rules rejected: group "g", rule 1,'
                          ' "X": could not parse expression')
    unmarshal = ("Checking b.yml\n  FAILED:\nb.yml: yaml: unmarshal errors:\n"
                 "  line 6: field foo not found in type rulefmt.RuleNode\n")
    assert str(tool_error(unmarshal, "alert rules", ["b.yml"])) == (
        "b.yml:6: alert rules rejected: yaml: unmarshal errors: line 6: field foo not found "
        "in type rulefmt.RuleNode")
    amtool = ("Checking 'am.yml'  FAILED: yaml: unmarshal errors:\n  line 3: field bogus not "
              "found in type config.plain\n\namtool: error: failed to validate 1 file(s)\n")
    assert str(tool_error(amtool, "Alertmanager config", ["am.yml"])) == (
        "am.yml:3: Alertmanager config rejected: yaml: unmarshal errors: line 3: field bogus "
        "not found in type config.plain")
