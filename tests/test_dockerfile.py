"""The Dockerfile, read as text (no Docker daemon here): a builder stage that builds the wheel, a slim final
stage that installs only that wheel, with no build tools, and runs `mcp-cloudops serve` as a non-root user;
OCI labels and the MCP Registry's ownership label in step with pyproject.toml and server.json."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVER = json.loads((ROOT / "server.json").read_text())
TEXT = (ROOT / "Dockerfile").read_text()


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for word, rest in self.instructions if word == keyword]

    def pairs(self, keyword: str) -> dict[str, str]:
        """LABEL / ENV key=value pairs, quotes removed."""
        found: dict[str, str] = {}
        for rest in self.args(keyword):
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                found[key] = value
        return found


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, rest) for each instruction: continuation lines joined, comment lines dropped, as Docker does."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            keyword, _, rest = whole.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults (before the first FROM) and the stages, FROM's variables filled in."""
    global_args: dict[str, str] = {}
    parsed: list[Stage] = []
    for keyword, rest in instructions(TEXT):
        if keyword == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            parsed.append(Stage(image, words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        elif parsed:
            parsed[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            global_args[name] = default
    return global_args, parsed


GLOBAL_ARGS, STAGES = stages()
BUILDER, FINAL = STAGES[0], STAGES[-1]


def stage_args(stage: Stage) -> dict[str, str]:
    return dict(rest.partition("=")[::2] for rest in stage.args("ARG"))


def test_two_stages_on_a_python_that_pyproject_allows() -> None:
    assert len(STAGES) >= 2
    assert BUILDER.name, "the builder stage is named, for COPY --from"
    for stage in (BUILDER, FINAL):
        match = re.fullmatch(r"python:(\d+\.\d+)-slim", stage.image)
        assert match, f"{stage.image}: a slim python image"
        assert match.group(1) + ".0" in SpecifierSet(PROJECT["requires-python"])
    assert BUILDER.image == FINAL.image, "the wheel is built and run on the same Python"


def test_builder_builds_the_wheel_with_the_real_registry() -> None:
    assert any("pip wheel --no-deps -w /dist ." in run for run in BUILDER.args("RUN"))
    copied = {source for rest in BUILDER.args("COPY") for source in rest.split()[:-1]}
    assert {"pyproject.toml", "README.md", "mcp_cloudops"} <= copied
    link = ROOT / "mcp_cloudops" / "tools.yaml"
    if link.is_symlink():  # the symlink's target travels with it, or the wheel would have no registry
        target = os.path.normpath(Path("mcp_cloudops") / os.readlink(link))
        assert target in copied


def test_final_stage_installs_only_the_builders_wheel() -> None:
    copies = FINAL.args("COPY")
    assert copies, "the final stage copies the wheel"
    assert all(rest.startswith(f"--from={BUILDER.name} /dist") for rest in copies), "nothing from the build context"
    [install] = [run for run in FINAL.args("RUN") if "pip install" in run]
    assert re.search(r"pip install --only-binary=:all: \S*/mcp_cloudops-\$\{VERSION\}-py3-none-any\.whl", install)


def test_final_stage_has_no_build_tools() -> None:
    for run in FINAL.args("RUN"):
        for word in ("apt-get", "apt ", "apk ", "gcc", "build-essential", "make ", "python3-dev", "--no-binary"):
            assert word not in run, f"final stage RUN uses {word.strip()}: {run}"


def test_runs_mcp_cloudops_serve_as_a_non_root_user() -> None:
    words = [word for word, _ in FINAL.instructions]
    assert "USER" in words and words.index("USER") < words.index("ENTRYPOINT")
    [user] = FINAL.args("USER")
    uid = user.partition(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "numeric and non-root (Kubernetes' runAsNonRoot can check it)"
    assert any(f"--uid {uid}" in run for run in FINAL.args("RUN")), "the user exists in the image"
    assert [json.loads(rest) for rest in FINAL.args("ENTRYPOINT")] == [[PROJECT["name"]]]
    assert PROJECT["scripts"][PROJECT["name"]]
    assert [json.loads(rest) for rest in FINAL.args("CMD")] == [["serve"]]
    assert FINAL.args("EXPOSE") == ["8000"]


def test_labels() -> None:
    labels = FINAL.pairs("LABEL")
    assert labels["org.opencontainers.image.title"] == PROJECT["name"]
    assert labels["org.opencontainers.image.description"] == PROJECT["description"]
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert stage_args(FINAL)["VERSION"] == PROJECT["version"]
    assert labels["org.opencontainers.image.source"] == SERVER["repository"]["url"]
    assert labels["org.opencontainers.image.licenses"] == PROJECT["license"]
    # The registry checks this label on the image before it lists the OCI package.
    assert labels["io.modelcontextprotocol.server.name"] == SERVER["name"]
    [oci] = [each for each in SERVER["packages"] if each["registryType"] == "oci"]
    assert oci["identifier"] in labels["org.opencontainers.image.source"]


def test_python_environment() -> None:
    env = FINAL.pairs("ENV")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert not any(key.startswith("MCP_CLOUDOPS_") for key in env), "settings come from `docker run -e`"


def test_usage_is_documented() -> None:
    comments = "\n".join(line for line in TEXT.splitlines() if line.startswith("#"))
    assert "docker run -i --rm -e" in comments
    assert "serve --transport http --host 0.0.0.0" in comments
    assert "MCP_CLOUDOPS_HTTP_TOKEN" in comments


def test_dockerignore_keeps_local_state_out_but_not_the_sources() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]
    for needed in (".venv", ".git", "tests", "bench", "interop/node_modules", ".lxd", "dist"):
        assert needed in patterns
    for source in ("pyproject.toml", "README.md", "tools.yaml", "mcp_cloudops", "mcp_cloudops/tools.yaml"):
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in patterns), f"{source} is left out"
