"""Hostile configuration through the command line: every value that is set but wrong stops `serve` before
anything starts, with exit status 2 and one line on stderr naming the setting and what to set, never a
traceback, never a server that starts and then fails every call (issue 12, item 2)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from registries import tools_yaml_of
from support import server_env, stop_process
from test_hostile_settings import BAD_NUMBERS

from mcp_cloudops.registry import Registry

TIMEOUT = 30  # seconds any one run of the CLI may take


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI, without any provider's or mcp-cloudops's own settings but `env`."""
    return subprocess.run(
        [sys.executable, "-m", "mcp_cloudops", *args],
        env=server_env(strip=("MCP_CLOUDOPS_",), **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def one_line_refusal(done: subprocess.CompletedProcess[str], *named: str) -> str:
    """The run exited 2 with nothing on stdout and one stderr line naming each of `named`: that line."""
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert all(name in lines[0] for name in named), lines[0]
    return lines[0]


@pytest.mark.parametrize(("name", "value"), BAD_NUMBERS)
def test_serve_stops_with_one_line_for_each_bad_number(name: str, value: str) -> None:
    line = one_line_refusal(run("serve", **{name: value}), name, repr(value))
    assert "set one" in line


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--http-idle-timeout", "soon"], ["MCP_CLOUDOPS_HTTP_IDLE_TIMEOUT", "--http-idle-timeout", "'soon'"]),
     (["--http-header-timeout", "-1"], ["MCP_CLOUDOPS_HTTP_HEADER_TIMEOUT", "--http-header-timeout", "'-1'"]),
     (["--port", "99999"], ["--port", "'99999'", "1-65535"]),
     (["--port", "http"], ["--port", "'http'"]),
     (["--transport", "carrier-pigeon"], ["--transport", "carrier-pigeon"])],
)  # fmt: skip
def test_a_bad_flag_is_one_line_too(flags: list[str], named: list[str]) -> None:
    one_line_refusal(run("serve", "--transport", "http", *flags), *named)


def test_a_misspelt_setting_is_refused_with_the_right_name() -> None:
    """MCP_CLOUDOPS_READONLY=1 would otherwise serve every write tool to a user who believes it read-only."""
    for command in ("serve", "list-tools", "check"):
        line = one_line_refusal(run(command, MCP_CLOUDOPS_READONLY="1"), "MCP_CLOUDOPS_READONLY")
        assert "did you mean MCP_CLOUDOPS_READ_ONLY?" in line


def test_every_bad_setting_is_told_at_once() -> None:
    done = run("serve", MCP_CLOUDOPS_OUTPUT_CAP="25k", MCP_CLOUDOPS_READ_TIMEOUT="soon", MCP_CLOUDOPS_RETRYS="3")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert [line.split("=")[0].split(" ")[0] for line in lines] == [
        "MCP_CLOUDOPS_READ_TIMEOUT",
        "MCP_CLOUDOPS_OUTPUT_CAP",
        "MCP_CLOUDOPS_RETRYS",
    ]


# Addresses wrong in each way a URL can be: no scheme, no host, a scheme that is not HTTP's; Incus's is not HTTPS.
BAD_URLS = ["api.example:9443", "https://", "ftp://api.example"]
BAD_INCUS_URL = "http://incus.example:8443"


def test_every_bad_provider_address_and_zone_is_one_line_each(registry: Registry, tmp_path: Path) -> None:
    """Every provider's address set wrong (and every zone), keys set: `serve` stops naming each setting, in
    tools.yaml's order, one line each."""
    env, named = {"MCP_CLOUDOPS_REGISTRY": str(tools_yaml_of(registry, tmp_path))}, []
    for n, provider in enumerate(registry.providers.values()):
        url = BAD_INCUS_URL if provider.auth.scheme == "incus" else BAD_URLS[n % len(BAD_URLS)]
        env |= {provider.url_env: url, **dict.fromkeys(provider.auth.env_names, "k")}
        named.append(provider.url_env)
        if provider.zone_env:
            env[provider.zone_env] = "moon-1"
            named.append(provider.zone_env)
    done = run("serve", **env)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert [line.split("=")[0] for line in lines] == named, lines
    assert all(f"set {name}" in line or "use " in line for name, line in zip(named, lines, strict=True)), lines


def test_a_bad_address_of_a_provider_left_out_by_the_policy_is_no_error() -> None:
    done = run("check", "--toolsets", "scaleway", INCUS_URL="http://incus.example:8443", SCW_SECRET_KEY="k")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "incus     off" in done.stdout


def test_incus_over_https_without_its_certificate_files_is_one_line(tmp_path: Path) -> None:
    """Every Incus call used to answer "internal error in get-operations (FileNotFoundError)"."""
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    missing = tmp_path / "client.crt"
    env = {"INCUS_URL": "https://127.0.0.1:8443", "INCUS_CLIENT_CERT": str(missing), "INCUS_CLIENT_KEY": str(key)}
    line = one_line_refusal(run("serve", **env), "INCUS_CLIENT_CERT", str(missing))
    assert "is not a readable file" in line and "set INCUS_CLIENT_CERT" in line
    missing.write_text("not a certificate")
    line = one_line_refusal(run("serve", **env, INCUS_SERVER_CERT=str(tmp_path / "server.crt")), "INCUS_SERVER_CERT")
    assert str(tmp_path / "server.crt") in line
    line = one_line_refusal(run("serve", **env), "INCUS_CLIENT_CERT", "INCUS_CLIENT_KEY")
    assert "do not load as a certificate and its key" in line


def test_a_port_in_use_is_one_line_and_nothing_claims_to_serve() -> None:
    """`serve --transport http` logged "streamable HTTP on ..." before the bind, then failed."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("serve", "--transport", "http", "--port", str(port))
    line = one_line_refusal(done, f"127.0.0.1:{port}", "--port")
    assert "in use" in line
    assert "streamable HTTP on" not in done.stderr and "serving" not in done.stderr.lower()


def test_an_address_not_of_this_machine_is_one_line() -> None:
    line = one_line_refusal(run("serve", "--transport", "http", "--host", "192.0.2.1", MCP_CLOUDOPS_HTTP_TOKEN="t0k"))
    assert "192.0.2.1" in line and "--host" in line


def test_the_serving_line_comes_once_the_port_listens() -> None:
    """Port 0: any free one, and the log line says which: it answers by the time the line is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_cloudops", "serve", "--transport", "http", "--port", "0"],
        env=server_env(strip=("MCP_CLOUDOPS_",)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not any("streamable HTTP on" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        [line] = [line for line in lines if "streamable HTTP on" in line]
        url = line.split("streamable HTTP on ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp") and not url.endswith(":0/mcp")
        assert httpx.get(url.removesuffix("/mcp") + "/", timeout=5).status_code < 500  # listening: an answer
    finally:
        stop_process(proc)
