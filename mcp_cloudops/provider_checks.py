"""What is wrong with a configured provider, one line each, before anything serves: a value set but wrong
stops `serve`; a provider set only in part starts with a warning. Above accounts.py and auth.py: it uses
both (a client certificate is checked by loading it the way every call will)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from mcp_cloudops.accounts import ENVIRONMENT, INCUS_ENV, Account, exists, incus_url_problem, url_problem
from mcp_cloudops.registry_models import Provider
from mcp_cloudops.setting_values import unreadable
from mcp_cloudops.settings import ConfigError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a provider's configuration, on one line that names what to set."""

    text: str
    fatal: bool  # a value set but wrong: `serve` refuses to start. Else incomplete: it starts and warns.


def socket_problem(path: str, name: str, given: bool) -> Problem | None:
    """Why the Incus unix socket at `path` cannot be used now, or None. `name` (INCUS_SOCKET or INCUS_URL)
    set it when `given`; else it is the first socket tools.yaml declares that exists."""
    subject = f"{name}={path}" if given else f"the Incus socket {path} ({name} not set)"
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        reason = "no such socket (is Incus running?)" if isinstance(exc, FileNotFoundError) else exc.strerror
        return Problem(f"{subject}: {reason}: set {name} to Incus's unix socket", False)
    if not stat.S_ISSOCK(mode):
        return Problem(f"{subject} is not a unix socket: set {name} to Incus's (e.g. /var/lib/incus/unix.socket)", True)
    if not os.access(path, os.R_OK | os.W_OK):
        return Problem(
            f"{subject}: this user may not use the socket: add the user to the incus-admin group (LXD: lxd), "
            "or run the server as one who may",
            False,
        )
    return None


def provider_problems(account: Account, provider: Provider) -> list[Problem]:
    """What keeps `provider` from working through a configured `account`, one line each: values set but
    wrong (fatal), or missing beside others that are set (not fatal: the server starts and its tools say
    what to set). None for an account not configured at all: its tools answer with what to set. Lines of
    an account from a file name it."""
    if not account.configured(provider):
        return []
    check = incus_problems if provider.auth.scheme == "incus" else http_problems
    problems = check(account, provider)
    if account.source == ENVIRONMENT:
        return problems
    return [Problem(f"{account.where}: {problem.text}", problem.fatal) for problem in problems]


def http_problems(account: Account, provider: Provider) -> list[Problem]:
    problems = []
    url = account.value(provider.url_env)
    if url and (text := url_problem(provider.url_env, url)):
        problems.append(Problem(text, True))
    zone = account.value(provider.zone_env) if provider.zone_env else None
    if zone and zone not in provider.zones:
        text = f"{provider.zone_env}={zone!r} is not a zone of {provider.title}: use one of {', '.join(provider.zones)}"
        problems.append(Problem(f"{text}, or unset it for {provider.default_zone}", True))
    needed = [*([] if provider.base_url else [provider.url_env]), *provider.auth.env_names]
    if missing := [name for name in needed if not account.value(name)]:
        problems.append(Problem(incomplete(provider, account, missing), False))
    return problems


def incus_problems(account: Account, provider: Provider) -> list[Problem]:
    url = account.value(provider.url_env)
    if url and not url.startswith("unix://"):
        text = incus_url_problem(provider.url_env, url)
        return [Problem(text, True)] if text else incus_tls_problems(account, url)
    if url == "unix://":
        return [Problem(f"{provider.url_env}={url!r} names no socket: use unix:///PATH/TO/unix.socket", True)]
    if url:
        problem = socket_problem(url.removeprefix("unix://"), provider.url_env, given=True)
    elif socket := account.value(INCUS_ENV["socket"]):
        problem = socket_problem(socket, INCUS_ENV["socket"], given=True)
    else:
        found = next(path for path in provider.sockets if exists(path))  # configured: one exists
        problem = socket_problem(found, INCUS_ENV["socket"], given=False)
    return [problem] if problem else []


def incus_tls_problems(account: Account, url: str) -> list[Problem]:
    """The client certificate, its key and the pinned server certificate of a remote Incus: readable files
    that load, else what to set. Checked at start, not as a FileNotFoundError in every call."""
    endpoint = account.incus_https(url)
    files = [
        (INCUS_ENV["cert"], endpoint.cert, "client certificate"),
        (INCUS_ENV["key"], endpoint.key, "client key"),
    ]
    files.append((INCUS_ENV["server_cert"], endpoint.server_cert, "server certificate"))
    problems = []
    for name, path, what in files:
        if path is None or not (reason := unreadable(path)):
            continue
        given = account.value(name)
        subject = f"{name}={given}" if given else f"{name} is not set and its default {path}"
        problems.append(Problem(f"{subject} is not a readable file ({reason}): set {name} to the {what}'s path", True))
    if problems:
        return problems
    from mcp_cloudops.auth import incus_ssl_context  # auth imports httpx: only where a certificate is checked

    try:
        incus_ssl_context(endpoint)
    except ConfigError as exc:
        return [Problem(str(exc), True)]
    return []


def incomplete(provider: Provider, account: Account, missing: list[str]) -> str:
    """A provider some of whose variables are set and others not: which to set, or which to unset."""
    given = [name for name in (provider.url_env, *provider.auth.env_names) if account.value(name)]
    them = "it" if len(missing) == 1 else "them"
    return (
        f"{provider.title}: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set but "
        f"{', '.join(given)} {'is' if len(given) == 1 else 'are'}: set {them}, or unset {', '.join(given)} "
        f"to leave {provider.title} out"
    )
