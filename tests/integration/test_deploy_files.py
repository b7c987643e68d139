"""The deployment files (Dockerfile, deploy/, docs/deployment.md) name only what exists.

Every repository path they mention exists; every ``SECTION__KEY`` they set is a real setting;
the ports agree (Dockerfile, compose, Prometheus, Grafana, units); ``tradecore config validate``
accepts the environment each process gets; ``docker compose config`` and ``systemd-analyze verify``
run where those tools are installed and skip with the reason where not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infrastructure.settings.loading import flatten_config, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
FILES = [REPO / "Dockerfile", DEPLOY / "compose.yaml", DEPLOY / "tradecore.env.example",
         DEPLOY / "systemd" / "tradecore-run@.service", DEPLOY / "systemd" / "tradecore-serve.service",
         DEPLOY / "systemd" / "bot.env.example", DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml",
         DEPLOY / "grafana" / "provisioning" / "dashboards" / "tradecore.yaml", REPO / "docs" / "deployment.md"]
TRADECORE = Path(sys.executable).with_name("tradecore")
PASSWORD = "not-a-real-password"
SETTING_NAME = re.compile(r"\b([A-Z]+__[A-Z_]+)\b")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(value: str) -> str:
    """Compose's ${NAME:?message} / ${NAME} with the test's password."""
    return re.sub(r"\$\{POSTGRES_PASSWORD(:\?[^}]*)?\}", PASSWORD, str(value))


def env_names() -> set[str]:
    return {path.replace(".", "__").upper() for path in flatten_config(load_settings(env={}))}


def validate(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not SETTING_NAME.fullmatch(k)}
    return subprocess.run([str(TRADECORE), "config", "validate"], env={**clean, **env}, capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_every_file_exists_and_every_repository_path_they_name_exists():
    for path in FILES:
        assert path.is_file(), path
    named: set[str] = set()
    for path in FILES:
        text = path.read_text()
        named |= set(re.findall(r"(?<![\w/.])((?:deploy|docs|tests|api|application|infrastructure)/[\w./@-]*\w)", text))
    compose_dir_paths = set()
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                compose_dir_paths.add(source)
    for source in compose_dir_paths:
        assert (DEPLOY / source).exists(), f"compose mounts {source}, which does not exist"
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE):
        for name in copied.split():
            assert (REPO / name).exists(), f"Dockerfile copies {name}, which does not exist"
    missing = sorted(name for name in named if not (REPO / name.rstrip(".")).exists()
                     and not name.startswith("deploy/tradecore.env") and not name.startswith("deploy/.env"))
    assert missing == [], f"named but missing: {missing}"
    assert "docs/deployment.md" in (REPO / "docs" / "architecture.md").read_text() + (REPO / "README.md").read_text()


def test_every_setting_name_they_use_is_a_real_setting():
    known = env_names()
    used = {}
    for path in FILES:
        for name in set(SETTING_NAME.findall(path.read_text())) - {"SECTION__KEY"}:
            used.setdefault(name, path.name)
    assert "TRADING__BOT_ID" in used and "EVENTSTORE__URL" in used
    unknown = {name: where for name, where in used.items() if name not in known}
    assert unknown == {}, f"not settings (docs/configuration.md): {unknown}"


def test_ports_agree_across_the_files():
    docker = (REPO / "Dockerfile").read_text()
    assert "EXPOSE 8080" in docker and "SYSTEM__API_PORT=8080" in docker and "/health" in docker
    assert re.search(r"^USER tradecore$", docker, flags=re.MULTILINE) and docker.count("FROM ") >= 2
    assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY)\w*=", docker), "a secret baked into the image"
    services = compose()["services"]
    node = services["read-node"]
    assert "127.0.0.1:8080:8080" in node["ports"] and node["environment"]["SYSTEM__API_PORT"] == "8080"
    prometheus = yaml.safe_load((REPO / "docs" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    assert services["prometheus"]["network_mode"] == "service:read-node"  # so 127.0.0.1:8080 is the read node
    assert "127.0.0.1:9090:9090" in node["ports"]
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://read-node:9090"
    assert "127.0.0.1:3000:3000" in services["grafana"]["ports"]
    serve_unit = (DEPLOY / "systemd" / "tradecore-serve.service").read_text()
    assert "serve --port 8080" in serve_unit
    bot = env_file(DEPLOY / "systemd" / "bot.env.example")
    assert bot["SYSTEM__API_PORT"] != "8080", "a bot beside the read node needs its own port"
    # systemd lets EnvironmentFile= override Environment=: the instance name stays the bot id only if no file sets it
    assert "TRADING__BOT_ID" not in bot and "TRADING__BOT_ID" not in env_file(DEPLOY / "tradecore.env.example")
    assert "Environment=TRADING__BOT_ID=%i" in (DEPLOY / "systemd" / "tradecore-run@.service").read_text()
    bots = [name for name, s in services.items() if "run" in s.get("command", [])]
    assert len(bots) == 2
    assert len({services[b]["environment"]["TRADING__BOT_ID"] for b in bots}) == 2
    assert {services[b]["environment"]["TRADING__PRODUCT"] for b in bots} == {"BTC-USD", "ETH-USD"}


def test_config_validate_accepts_the_environment_of_every_process():
    shared = env_file(DEPLOY / "tradecore.env.example")
    checked = validate(shared)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bot = {**shared, **env_file(DEPLOY / "systemd" / "bot.env.example"), "TRADING__BOT_ID": "paper-btc-usd"}
    bot.pop("TRADECORE_RUN_FLAGS")
    checked = validate(bot)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name, service in compose()["services"].items():
        if "environment" not in service or name in ("postgres", "grafana"):
            continue
        env = {**shared, **{k: interpolate(v) for k, v in service["environment"].items()}}
        checked = validate(env)
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"
    broken = validate({**shared, "TRADING__BOT_ID": "Paper BTC"})
    assert broken.returncode == 2 and "trading.bot_id" in broken.stdout + broken.stderr


def _compose_available() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        said = ((probe.stderr or probe.stdout).strip().splitlines() or ["no output"])[0]
        return f"the docker compose plugin is not installed (`docker compose version`: {said})"
    return None


def test_docker_compose_accepts_the_compose_file():
    reason = _compose_available()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                            env={**os.environ, "POSTGRES_PASSWORD": PASSWORD}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    unset = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                           env={k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"},
                           capture_output=True, text=True, timeout=60)
    assert unset.returncode != 0 and "POSTGRES_PASSWORD" in unset.stderr  # no default password


def test_systemd_accepts_the_units(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # The units name /opt/tradecore/bin/tradecore (docs/deployment.md); verify checks the binary exists,
    # so point them at this checkout's tradecore for the check.
    for unit in ("tradecore-run@.service", "tradecore-serve.service"):
        text = (DEPLOY / "systemd" / unit).read_text()
        assert "/opt/tradecore/bin/tradecore" in text and "User=tradecore" in text
        (tmp_path / unit).write_text(text.replace("/opt/tradecore/bin/tradecore", str(TRADECORE)))
    result = subprocess.run(["systemd-analyze", "verify", "tradecore-serve.service", "tradecore-run@paper-btc-usd.service"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "tradecore-serve.service").write_text(
        (tmp_path / "tradecore-serve.service").read_text().replace("ExecStart=", "ExecStrat="))
    broken = subprocess.run(["systemd-analyze", "verify", "tradecore-serve.service"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "ExecStrat" in broken.stdout + broken.stderr  # the check does look at the file


def test_the_provisioned_dashboard_resolves_its_datasource_and_filters_by_bot():
    import json

    dashboard = json.loads((REPO / "docs" / "grafana" / "trading_bot.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"  # provisioning does not fill __inputs: a variable does
    assert variables["bot"]["includeAll"] and "bot" in variables["bot"]["query"]["query"]
    labelled = ("trading_bot_halted", "trading_bot_positions", "trading_bot_daily_pnl", "trading_bot_equity",
                "trading_bot_trades_total", "trading_bot_trade_success_rate", "trading_bot_decisions_total")
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if any(name in target["expr"] for name in labelled):
                assert "$bot" in target["expr"], (panel["title"], target["expr"])


def test_prometheus_does_not_overwrite_the_metrics_bot_label():
    config = yaml.safe_load((REPO / "docs" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            assert "bot" not in static.get("labels", {}), "a target label bot would rename every series' bot label"
