"""server.json, the MCP Registry entry, kept in step with the project: it validates against the registry's
schema (vendored in tests/schemas/, see its README), names the version and distribution pyproject.toml
declares, and declares every credential and location variable the providers in tools.yaml read, in both
packages (PyPI and the container image); docs/configuration.md, "Providers" documents each of them."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mcp_cloudops.accounts import INCUS_ENV

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json"
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "server.schema.2025-09-29.json").read_text())
SERVER = json.loads((ROOT / "server.json").read_text())
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PROVIDERS: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "tools.yaml").read_text())["providers"]


def provider_variables() -> dict[str, bool]:
    """Every variable the providers read, mapped to whether it holds a secret."""
    found: dict[str, bool] = {}
    for provider in PROVIDERS.values():
        auth = provider.get("auth") or {}
        for key in ("url_env", "zone_env"):
            if provider.get(key):
                found[provider[key]] = False
        if provider.get("default_project"):
            found[provider["default_project"]["env"]] = False
        if auth.get("key_env"):
            found[auth["key_env"]] = True  # an API key names the account: handled as a secret too
        if auth.get("secret_env"):
            found[auth["secret_env"]] = True
    for name in INCUS_ENV.values():
        found.setdefault(name, name == INCUS_ENV["token"])
    return found


VARIABLES = provider_variables()


def package(registry_type: str) -> dict[str, Any]:
    [found] = [each for each in SERVER["packages"] if each["registryType"] == registry_type]
    return found


def configuration_section() -> str:
    text = (ROOT / "docs" / "configuration.md").read_text()
    match = re.search(r"^## Providers\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "docs/configuration.md has no '## Providers' section"
    return match.group(1)


def test_validates_against_the_registry_schema() -> None:
    assert SCHEMA["$id"] == SCHEMA_URL == SERVER["$schema"]
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = validator.iter_errors(SERVER)
    problems = [f"/{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors]
    assert problems == []


def test_name_and_description_fit_the_registry() -> None:
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", SERVER["name"]), "reverse-DNS, exactly one slash"
    assert SERVER["name"].startswith("io.github.")  # the namespace GitHub sign-in proves
    assert 1 <= len(SERVER["description"]) <= 100


def test_versions_are_pyprojects() -> None:
    assert SERVER["version"] == PROJECT["version"]
    assert [each["version"] for each in SERVER["packages"]] == [PROJECT["version"]] * len(SERVER["packages"])


def test_pypi_package_is_the_distribution() -> None:
    pypi = package("pypi")
    assert pypi["identifier"] == PROJECT["name"]
    assert pypi.get("registryBaseUrl", "https://pypi.org") == "https://pypi.org"
    assert pypi["runtimeHint"] == "uvx"
    assert pypi["transport"] == {"type": "stdio"}
    assert PROJECT["scripts"][PROJECT["name"]]  # `uvx mcp-cloudops` runs the command of the same name


def test_oci_package_is_the_image() -> None:
    """Schema 2025-09-29 names an image by registryBaseUrl + namespace/repository, its tag in version (later
    schemas put the registry and tag in identifier instead)."""
    oci = package("oci")
    assert oci["registryBaseUrl"] in ("https://ghcr.io", "https://docker.io")
    assert re.fullmatch(r"[a-z0-9._-]+/[a-z0-9._-]+", oci["identifier"]), "namespace/repository, no host or tag"
    assert oci["runtimeHint"] == "docker"
    assert oci["transport"] == {"type": "stdio"}


@pytest.mark.parametrize("registry_type", ["pypi", "oci"])
def test_packages_run_serve(registry_type: str) -> None:
    assert package(registry_type)["packageArguments"] == [
        {"type": "positional", "value": "serve", "description": "Run the MCP server over stdio."}
    ]


@pytest.mark.parametrize("registry_type", ["pypi", "oci"])
def test_packages_declare_every_provider_variable(registry_type: str) -> None:
    declared = package(registry_type)["environmentVariables"]
    names = [each["name"] for each in declared]
    assert len(names) == len(set(names)), "a variable declared twice"
    assert sorted(names) == sorted(VARIABLES), "server.json and tools.yaml / settings.INCUS_ENV differ"
    for each in declared:
        assert each["isRequired"] is False, f"{each['name']}: every provider is optional"
        assert each["description"], each["name"]
        assert each.get("isSecret", False) is VARIABLES[each["name"]], f"{each['name']}: isSecret"


def test_both_packages_declare_the_same_variables() -> None:
    assert package("pypi")["environmentVariables"] == package("oci")["environmentVariables"]


@pytest.mark.parametrize("provider", [key for key, value in PROVIDERS.items() if value.get("zone_env")])
def test_zone_choices_are_the_providers_zones(provider: str) -> None:
    settings = PROVIDERS[provider]
    [declared] = [each for each in package("pypi")["environmentVariables"] if each["name"] == settings["zone_env"]]
    assert declared["choices"] == settings["zones"]
    assert settings["default_zone"] in declared["description"]


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_readme_configuration_names_the_variable(name: str) -> None:
    assert re.search(rf"\b{name}\b", configuration_section())


def test_readme_carries_the_pypi_ownership_line() -> None:
    """The registry accepts the PyPI package only if its description (the README) says `mcp-name: <name>`."""
    assert f"mcp-name: {SERVER['name']}" in (ROOT / "README.md").read_text()
