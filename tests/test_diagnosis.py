"""Why a call failed when the upstream does not say (diagnosis.py, tools.yaml `diagnose`): each check tells
one cause apart, in the registry's own words."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_cloudops.diagnosis import failed, found_in, words
from mcp_cloudops.registry import RegistryError, load_registry, parse_registry

REGISTRY = load_registry()
POD = REGISTRY.by_name["execute-websocket-pod"]
ARGS = {"endpointId": 1, "namespace": "default", "podName": "web-0", "containerName": "web", "command": "ls"}
PODS = {"items": [{"metadata": {"name": "web-0"}, "spec": {"containers": [{"name": "web"}, {"name": "log"}]}}]}


def test_an_environment_of_the_other_kind_is_named() -> None:
    kind = POD.diagnose.checks[0]
    assert failed(kind, {"Id": 1, "Type": 1}, ARGS) == (
        "Environment 1 is a Docker environment (Type 1), and this tool needs a Kubernetes one (Type 5, 6 or 7): "
        "pick one from list-portainer-environments."
    )
    assert failed(kind, {"Id": 2, "Type": 6}, ARGS) is None
    assert "is of an unknown kind (Type 99)" in failed(kind, {"Type": 99}, ARGS)


def test_the_docker_tools_say_the_reverse() -> None:
    for name in ("list-docker-containers", "create-docker-exec", "execute-websocket", "attach-websocket"):
        kind = REGISTRY.by_name[name].diagnose.checks[0]
        assert failed(kind, {"Type": 5}, ARGS) == (
            "Environment 1 is a Kubernetes environment (Type 5), and this tool needs a Docker one (Type 1, 2 or 4): "
            "pick one from list-portainer-environments."
        )


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (
            {"namespace": "nope"},
            "Environment 1 has no namespace nope: list its namespaces with list-kubernetes-namespaces.",
        ),
        ({"podName": "web-9"}, "Namespace default has no pod web-9: list its pods with list-kubernetes-pods."),
        ({"containerName": "db"}, "Pod web-0 has no container db: list-kubernetes-pods shows each pod's containers."),
    ],
)
def test_a_missing_namespace_pod_or_container_is_told_apart(args: dict[str, Any], cause: str) -> None:
    call = ARGS | args
    namespaces = {"items": [{"metadata": {"name": "default"}}, {"metadata": {"name": "kube-system"}}]}
    answers = [namespaces, PODS, PODS]
    said = [failed(check, data, call) for check, data in zip(POD.diagnose.checks[1:], answers, strict=True)]
    assert next(s for s in said if s) == cause  # the first check that fails names the cause


def test_find_needs_the_inner_item_too() -> None:
    check = POD.diagnose.checks[3].find
    assert found_in(check, PODS, ARGS) and found_in(check, PODS, ARGS | {"containerName": "log"})
    assert not found_in(check, PODS, ARGS | {"containerName": "db"})
    assert not found_in(check, {"items": "not a list"}, ARGS)


def test_words_fill_text_as_is_and_the_rest_as_json() -> None:
    assert words("{a} {b} {c}", {"a": "x", "b": 2, "c": None}) == "x 2 null"


def test_a_check_must_name_an_existing_tool_in_its_words() -> None:
    import copy

    import yaml

    from mcp_cloudops.registry import default_path

    raw = yaml.safe_load(default_path().read_text())
    broken = copy.deepcopy(raw)
    tool = next(t for t in broken["tools"] if t["name"] == "execute-websocket-pod")
    tool["diagnose"]["checks"][1]["tool"] = "list-namespaces"
    with pytest.raises(RegistryError, match=r"field 'diagnose\.checks\.1\.tool': no tool named 'list-namespaces'"):
        parse_registry(broken)
    tool["diagnose"]["checks"][1]["tool"] = "list-kubernetes-pods"
    with pytest.raises(RegistryError, match=r"field 'diagnose\.checks\.1\.say': say to use list-kubernetes-pods"):
        parse_registry(broken)
