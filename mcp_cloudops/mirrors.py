"""Every file of the checkout that mirrors tools.yaml (or pyproject.toml), and what it must hold now:

- the tool table in docs/tools.md (in any Markdown file holding the tools:start / tools:end markers);
- bundle/manifest.json: the version and description (pyproject's), the tools, and user_config with the env
  that passes each setting to the server;
- server.json: the versions, and each package's environmentVariables;
- tests/snapshots/: what a client is served (snapshots.py).

`mcp-cloudops generate` writes them and `generate --check` (tests/test_mirrors.py too) names the stale ones.
What a person wrote about a setting (its title and description) is theirs and kept; a setting new to the
registry gets one written from the registry, to review in the diff. Facts (which settings, in which order,
secret or not, their types and choices) are the registry's alone.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_cloudops.accounts import INCUS_ENV, secret_variables, variables_of
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.snapshots import MirrorError, pretty, snapshots

COMMAND = "mcp-cloudops generate"
PACKAGE = Path(__file__).resolve().parent
START, END = "<!-- tools:start -->", "<!-- tools:end -->"
TABLES = "docs/tools.md"  # the table's home: it must hold the markers
MANIFEST, SERVER_JSON, SNAPSHOTS = "bundle/manifest.json", "server.json", "tests/snapshots"
# The bundle's switches: settings of the server, not of a provider (bundle/manifest.json keeps their prose).
SWITCHES = {
    "sandbox": "MCP_CLOUDOPS_SANDBOX",
    "read_only": "MCP_CLOUDOPS_READ_ONLY",
    "cli_accounts": "MCP_CLOUDOPS_CLI_ACCOUNTS",
}
# Incus's files, picked in Claude Desktop's choosers; the socket is a path too, but no chooser offers one.
PICKED = {
    INCUS_ENV["cert"]: "file",
    INCUS_ENV["key"]: "file",
    INCUS_ENV["server_cert"]: "file",
    INCUS_ENV["conf"]: "directory",
}
PATHS = {*PICKED, INCUS_ENV["socket"]}


class NotACheckout(MirrorError):
    """generate was run where no source checkout is: it writes the checkout's files, so it has none to write."""


@dataclass(frozen=True)
class Checkout:
    """A source checkout: its top folder, its registry (tools.yaml) and pyproject.toml's [project]."""

    root: Path
    registry: Registry
    project: dict[str, Any]

    def text(self, path: str) -> str:
        try:
            return (self.root / path).read_text(encoding="utf-8")
        except OSError as exc:
            raise MirrorError(f"cannot read {path} ({exc.strerror}): restore it (git checkout -- {path})") from None

    def json(self, path: str) -> dict[str, Any]:
        try:
            return json.loads(self.text(path))
        except json.JSONDecodeError as exc:
            raise MirrorError(f"{path} is not JSON ({exc}): fix it, or restore it (git checkout -- {path})") from None


def project_of(folder: Path) -> dict[str, Any] | None:
    """pyproject.toml's [project] when `folder` is this project's checkout (tools.yaml beside it), else None."""
    try:
        project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return project if project.get("name") == "mcp-cloudops" and (folder / "tools.yaml").is_file() else None


def find_checkout(start: Path) -> Checkout:
    """The checkout holding `start` (it or a folder above), else the one this package runs from. Refused: a
    checkout whose package is not the one running, which would make the snapshots of another version."""
    for folder in (start, *start.parents, PACKAGE.parent):
        if (project := project_of(folder)) is None:
            continue
        own = folder / "mcp_cloudops"
        if own.is_dir() and own.resolve() != PACKAGE:
            raise MirrorError(
                f"{folder} is a checkout, but this mcp-cloudops runs from {PACKAGE}: what it serves is not what the "
                f"checkout's code serves. Run the checkout's own: pip install -e . in its venv, then "
                f"{COMMAND} with that venv's mcp-cloudops"
            )
        return Checkout(folder, load_registry(folder / "tools.yaml"), project)
    raise NotACheckout(
        f"{COMMAND} rewrites files of a source checkout (the folder holding tools.yaml and pyproject.toml), and "
        f"neither {start} nor a folder above it is one, nor is the package's ({PACKAGE.parent}): run it inside a "
        "clone of the repository"
    )


# --- the tool table ---------------------------------------------------------------------------------------


def tool_table(registry: Registry, tools: Sequence[ToolSpec] | None = None) -> str:
    """The tools (all, or those given) as a Markdown table: name, provider and hints."""
    lines = ["| tool | provider | readOnly | destructive | idempotent |", "|---|---|---|---|---|"]
    for tool in registry.tools if tools is None else tools:
        h = tool.hints
        marks = ["yes" if v else "no" for v in (h.readOnly, h.destructive, h.idempotent)]
        lines.append(f"| `{tool.name}` | {registry.providers[tool.provider].title} | " + " | ".join(marks) + " |")
    return "\n".join(lines)


def table_files(checkout: Checkout) -> list[str]:
    """docs/tools.md, and every other Markdown file of the docs (README.md too) holding the markers."""
    candidates = [checkout.root / "README.md", *sorted((checkout.root / "docs").rglob("*.md"))]
    found = [path.relative_to(checkout.root).as_posix() for path in candidates if START in read(path)]
    return sorted({TABLES, *found})


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def with_table(text: str, table: str, path: str) -> str:
    """`text` with the table between its markers replaced by `table`."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not (start and end):
        raise MirrorError(f"{path} holds no {START} ... {END} pair: put the two lines where the tool table goes")
    return f"{head}{START}\n{table}\n{END}{tail}"


# --- the settings a person fills in -----------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One variable a provider is configured with, as the bundle's form and server.json declare it."""

    name: str
    title: str  # written from the registry: used where no person wrote one
    description: str
    secret: bool
    picked: str  # string | file | directory: how Claude Desktop asks for it
    path: bool  # a filesystem path (server.json's format: filepath)
    choices: tuple[str, ...]  # the values it may take (a provider's zones)


def variables(registry: Registry) -> list[Variable]:
    """Every provider variable, provider by provider in tools.yaml's order, each in the order a person fills
    them in (variables_of says which there are)."""
    found: dict[str, Variable] = {}
    for provider in registry.providers.values():
        secrets = secret_variables(provider)
        for name in sorted(variables_of(provider), key=lambda name: form_rank(provider, name)):
            title, description = written(provider, name)
            choices = provider.zones if name == provider.zone_env else ()
            picked = PICKED.get(name, "string") if provider.auth.scheme == "incus" else "string"
            path = name in PATHS and provider.auth.scheme == "incus"
            found.setdefault(name, Variable(name, title, description, name in secrets, picked, path, choices))
    return list(found.values())


def form_rank(provider: Provider, name: str) -> int:
    """Where a variable goes in a provider's part of the form: where the provider is first (its local socket,
    else an address that must be given), then how to sign in, the defaults (zone, project), and last an
    address that only overrides the public API's."""
    if provider.auth.scheme == "incus" and name == INCUS_ENV["socket"]:
        return -1
    if name == provider.url_env:
        return 0 if provider.base_url is None else 4
    if name == provider.zone_env:
        return 2
    if provider.default_project is not None and name == provider.default_project.env:
        return 3
    return 1


def written(provider: Provider, name: str) -> tuple[str, str]:
    """A title and a description for a variable nobody has described yet, from what the registry says of it."""
    title, auth = provider.title, provider.auth
    if name == provider.url_env and provider.base_url is not None:
        return f"{title}: API endpoint", f"Overrides {provider.base_url}. Empty: {title}'s."
    if name == provider.url_env:
        return f"{title}: URL", f"Your {title} server's address, e.g. https://HOST:PORT (needed for its tools)."
    if name == provider.zone_env:
        default = provider.default_zone
        return f"{title}: default zone", f"{title} zone used when a tool call names none (default: {default})."
    if provider.default_project is not None and name == provider.default_project.env:
        return f"{title}: default project", f"The {title} project a call acts in when it names none."
    if name == auth.key_env:
        return f"{title}: API key", f"{title} API key."
    if name == auth.secret_env:
        sent = f"sent as {auth.header}" if auth.header else "sent as a bearer token"
        if auth.key_env:
            return f"{title}: API secret", f"The secret of the {title} API key; every request is signed with it."
        return f"{title}: API key", f"{title} API key, {sent}."
    role = next((role for role, variable in INCUS_ENV.items() if variable == name), name.lower())
    return f"{title}: {role.replace('_', ' ')}", f"{title}'s {role.replace('_', ' ')} ({name})."


def placeholder(key: str) -> str:
    return "${user_config." + key + "}"


def option(variable: Variable, current: dict[str, Any] | None) -> dict[str, Any]:
    """The bundle's user_config entry for a provider variable: unset unless the user fills it in."""
    kept = current or {}
    entry: dict[str, Any] = {
        "type": variable.picked,
        "title": kept.get("title") or variable.title,
        "description": kept.get("description") or variable.description,
        "required": False,
    }
    # Unset and without a default, mcpb's substitution leaves "${user_config.KEY}" in the env: an empty one.
    return entry | ({"sensitive": True} if variable.secret else {}) | {"default": ""}


def switch(key: str, current: dict[str, Any] | None) -> dict[str, Any]:
    """The bundle's user_config entry for one of the server's switches: off unless ticked."""
    kept = current or {}
    title = kept.get("title") or key.replace("_", " ").capitalize()
    description = kept.get("description") or f"Sets {SWITCHES[key]} (see the docs' configuration)."
    return {"type": "boolean", "title": title, "description": description, "required": False, "default": False}


def manifest(checkout: Checkout) -> dict[str, Any]:
    """bundle/manifest.json with what mirrors the project: its other fields (and their order) kept."""
    current = checkout.json(MANIFEST)
    options = current.get("user_config") or {}
    config = {key: switch(key, options.get(key)) for key in SWITCHES}
    env = {name: placeholder(key) for key, name in SWITCHES.items()}
    for variable in variables(checkout.registry):
        key = variable.name.lower()
        config[key] = option(variable, options.get(key))
        env[variable.name] = placeholder(key)
    server = current.get("server") or {}
    mcp_config = (server.get("mcp_config") or {}) | {"env": env}
    return current | {
        "version": checkout.project["version"],
        "description": checkout.project["description"],
        "server": server | {"mcp_config": mcp_config},
        "tools": [{"name": tool.name, "description": tool.description} for tool in checkout.registry.tools],
        "user_config": config,
    }


def declared(variable: Variable, current: dict[str, Any] | None) -> dict[str, Any]:
    """server.json's entry for a variable: every provider is optional."""
    entry: dict[str, Any] = {
        "name": variable.name,
        "description": (current or {}).get("description") or variable.description,
        "isRequired": False,
    }
    entry |= {"isSecret": True} if variable.secret else {}
    entry |= {"format": "filepath"} if variable.path else {}
    return entry | ({"choices": list(variable.choices)} if variable.choices else {})


def server_entry(checkout: Checkout) -> dict[str, Any]:
    """server.json with pyproject's version and the registry's variables in every package."""
    current = checkout.json(SERVER_JSON)
    version = checkout.project["version"]
    packages = current.get("packages") or []
    known = {each["name"]: each for package in packages for each in package.get("environmentVariables", [])}
    env = [declared(variable, known.get(variable.name)) for variable in variables(checkout.registry)]
    packages = [package | {"version": version, "environmentVariables": env} for package in packages]
    return current | {"version": version, "packages": packages}


# --- all of them ------------------------------------------------------------------------------------------


async def expected(checkout: Checkout) -> dict[str, str | None]:
    """Each mirror's path (from the checkout's top) and what it must hold; None: a file of tests/snapshots/
    that nothing makes any more, to delete."""
    table = tool_table(checkout.registry)
    files: dict[str, str | None] = {
        path: with_table(checkout.text(path), table, path) for path in table_files(checkout)
    }
    files[MANIFEST] = pretty(manifest(checkout))
    files[SERVER_JSON] = pretty(server_entry(checkout))
    made = await snapshots(checkout.registry)
    files |= {f"{SNAPSHOTS}/{name}": text for name, text in made.items()}
    folder = checkout.root / SNAPSHOTS
    strays = sorted(path.name for path in folder.iterdir() if path.name not in made) if folder.is_dir() else []
    return files | {f"{SNAPSHOTS}/{name}": None for name in strays}


def stale(checkout: Checkout, files: dict[str, str | None]) -> Iterator[str]:
    """The mirrors whose file differs from what it must hold (or must go)."""
    for path, text in files.items():
        target = checkout.root / path
        if text is None or not target.is_file() or target.read_text(encoding="utf-8") != text:
            yield path


def write(checkout: Checkout, files: dict[str, str | None], paths: Sequence[str]) -> None:
    """Bring `paths` up to date: each written whole (or deleted)."""
    for path in paths:
        target, text = checkout.root / path, files[path]
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
