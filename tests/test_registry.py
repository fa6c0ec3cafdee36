"""The registry refuses every mistake at start, naming the tool and field."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
import yaml
from registries import REAL, SIX, SIXTH, SIXTH_PROVIDER, SIXTH_TOOL, write_six_providers

from mcp_cloudops.registry import Registry, RegistryError, default_path, load_registry, parse_registry
from mcp_cloudops.schema import input_schema

# The seeds' 38 tools and Nirvana's 2, plus get-exoscale-operation (needed to follow Exoscale operations),
# plus the companion tools that list the ids they take (issue 11).
SEED_COUNTS = {"incus": 8, "exoscale": 21, "scaleway": 6, "portainer": 4, "nirvana": 2}
COMPANIONS = {
    "incus": ["list-instances", "exec-instance", "update-instance-state"],
    "exoscale": ["list-instance-types", "list-templates", "list-ssh-keys", "list-security-groups",
                 "list-exoscale-snapshots"],
    "scaleway": ["list-scaleway-snapshots"],
    "portainer": ["list-portainer-environments", "list-docker-containers", "list-kubernetes-namespaces",
                  "list-kubernetes-pods", "create-docker-exec"],
    "nirvana": ["list-nirvana-projects"],
}  # fmt: skip


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(default_path().read_text())


def broken(raw: dict[str, Any], tool: str, **changes: Any) -> str:
    data = copy.deepcopy(raw)
    entry = next(t for t in data["tools"] if t["name"] == tool)
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    with pytest.raises(RegistryError) as caught:
        parse_registry(data)
    return str(caught.value)


def test_tools_yaml_has_every_seed_tool_once() -> None:
    """The seeds' providers keep every tool they had; a provider added since has tools of its own."""
    counts: dict[str, int] = {}
    for tool in REAL.tools:
        counts[tool.provider] = counts.get(tool.provider, 0) + 1
    companions = {provider: len(names) for provider, names in COMPANIONS.items()}
    seeded = {provider: counts.get(provider, 0) for provider in SEED_COUNTS}
    assert seeded == {provider: n + companions.get(provider, 0) for provider, n in SEED_COUNTS.items()}
    names = {t.name for t in REAL.tools if t.provider in SEED_COUNTS}
    assert len(names) == 41 + sum(companions.values())
    assert {name for group in COMPANIONS.values() for name in group} <= names


def test_a_scratch_tools_yaml_with_a_sixth_provider_is_what_the_registry_checks_run_over(tmp_path: Any) -> None:
    """The acceptance of issue 24 item 3: a header-auth provider added to a copy of tools.yaml loads, and the
    checks that take `registry` run over it (their ids end in [six-providers]) without naming it."""
    loaded = load_registry(write_six_providers(tmp_path))
    assert loaded == SIX
    assert list(loaded.providers) == [*REAL.providers, SIXTH]
    sixth = loaded.providers[SIXTH]
    assert sixth.auth.model_dump(exclude_none=True) == SIXTH_PROVIDER["auth"]  # a header carries its key
    assert [tool.name for tool in loaded.tools if tool.provider == SIXTH] == [SIXTH_TOOL["name"]]
    assert loaded.tools[: len(REAL.tools)] == REAL.tools  # the rest is tools.yaml's, as it is


def test_every_provider_offers_tools_and_says_what_its_toolset_covers(registry: Registry) -> None:
    """list-toolsets shows each provider's summary and tool count; a provider without tools is a toolset of nothing."""
    for key, provider in registry.providers.items():
        assert any(tool.provider == key for tool in registry.tools), key
        assert provider.summary, key


def test_every_tool_is_open_world_and_read_only_tools_only_get(registry: Registry) -> None:
    for tool in registry.tools:
        assert tool.hints.openWorld, tool.name
        if tool.hints.readOnly:
            assert tool.method == "GET" and not tool.hints.destructive, tool.name


def test_no_credential_is_a_parameter(registry: Registry) -> None:
    for tool in registry.tools:
        names = {p.name.lower() for p in tool.params}
        assert not names & {"token", "api_key", "apikey", "secret_key", "password", "authorization"}, tool.name


def test_unknown_provider_is_named(raw: dict[str, Any]) -> None:
    message = broken(raw, "stop-compute-instance", provider="aws")
    assert "tool 'stop-compute-instance' field 'provider'" in message and "aws" in message


def test_missing_hint_is_refused(raw: dict[str, Any]) -> None:
    message = broken(raw, "stop-compute-instance", hints={"readOnly": False, "destructive": False, "openWorld": True})
    assert "tool 'stop-compute-instance' field 'hints.idempotent'" in message


def test_read_only_tool_with_mutating_method(raw: dict[str, Any]) -> None:
    message = broken(raw, "get-operation-state", method="DELETE")
    assert "tool 'get-operation-state' field 'hints.readOnly'" in message and "DELETE" in message


def test_path_placeholder_without_param(raw: dict[str, Any]) -> None:
    message = broken(raw, "get-operation-state", path="/1.0/operations/{uuid}")
    assert "placeholder {uuid}" in message and "tool 'get-operation-state'" in message


def test_path_param_missing_from_path(raw: dict[str, Any]) -> None:
    message = broken(raw, "get-operation-state", path="/1.0/operations")
    assert "path parameter 'id' does not appear in path" in message


def test_duplicate_tool_name(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["tools"].append(copy.deepcopy(data["tools"][0]))
    with pytest.raises(RegistryError, match=f"tool '{data['tools'][0]['name']}': duplicate tool name"):
        parse_registry(data)


def test_bad_param_schema_and_location(raw: dict[str, Any]) -> None:
    params = [copy.deepcopy(raw["providers"]["incus"]["params"]["operation"])]  # spelled out, not named
    params[0]["schema"] = {"type": "strung"}
    assert "field 'params.id.schema.type'" in broken(raw, "get-operation-state", params=params)
    params[0]["in"] = "header"
    assert "field 'params.id.in'" in broken(raw, "get-operation-state", params=params)


def test_unknown_field_and_version(raw: dict[str, Any]) -> None:
    assert "field 'verb'" in broken(raw, "get-operation-state", verb="GET")
    data = copy.deepcopy(raw)
    data["version"] = 2
    with pytest.raises(RegistryError, match="version 2 is not supported"):
        parse_registry(data)


def test_body_on_get_and_websocket_method(raw: dict[str, Any]) -> None:
    tool = next(t for t in raw["tools"] if t["name"] == "list-compute-instances")
    params = [*copy.deepcopy(tool["params"]), {"name": "x", "in": "body", "description": "d"}]
    assert "GET requests carry no body parameters" in broken(raw, "list-compute-instances", params=params)
    assert "websocket tools open with GET" in broken(
        raw,
        "list-compute-instances",
        websocket=True,
        method="POST",
        hints={"readOnly": False, "destructive": False, "idempotent": False, "openWorld": True},
    )


def test_unreadable_file(tmp_path: Any) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("- just a list\n")
    with pytest.raises(RegistryError, match="expected a mapping"):
        load_registry(path)


def test_follow_up_read_names_real_parameters(raw: dict[str, Any]) -> None:
    message = broken(
        raw, "execute-websocket", after={"path": "/api/exec/{execId}/json", "pick": {"exit_code": "ExitCode"}}
    )
    assert "tool 'execute-websocket' field 'after.path': placeholder {execId} is not a parameter" in message
    assert "only websocket tools" in broken(
        raw, "get-operation-state", after={"path": "/1.0/operations/{id}", "pick": {"s": "status"}}
    )


def test_a_flow_names_only_tools_that_exist(raw: dict[str, Any]) -> None:
    """The exec attachment's steps are declared, and a custom registry without them is refused at start
    (it used to be a KeyError shown to the agent as an internal error)."""
    steps = load_registry().by_name["get-websocket-stream"].steps()
    assert {name: step.tool for name, step in steps.items()} == {
        "attach_all.read": "get-operation-state",
        "attach_all.finish": "wait-operation",
    }
    data = copy.deepcopy(raw)
    data["tools"] = [tool for tool in data["tools"] if tool["name"] != "wait-operation"]
    with pytest.raises(RegistryError) as refused:
        parse_registry(data)
    assert "tool 'get-websocket-stream' field 'attach_all.finish': no tool named 'wait-operation'" in str(refused.value)
    assert "not a query parameter" in broken(raw, "get-websocket-stream", params=["exec-operation", "max_bytes"])


def test_tools_name_shared_parameter_definitions(raw: dict[str, Any]) -> None:
    """Each fact once: `- instance` in a tool's params is the exoscale provider's definition."""
    registry = parse_registry(raw)
    start, stop = registry.by_name["start-compute-instance"], registry.by_name["stop-compute-instance"]
    assert start.params[0] == stop.params[0] == registry.providers["exoscale"].params["instance"]
    assert registry.by_name["attach-websocket"].params[-1] == registry.params["max_bytes"]


def test_an_unknown_parameter_name_is_refused_naming_the_tool(raw: dict[str, Any]) -> None:
    message = broken(raw, "stop-compute-instance", params=["instance", "zone", "instanse"])
    assert "tool 'stop-compute-instance' field 'params.2': no parameter definition named 'instanse'" in message
    assert "instance" in message and "zone" in message  # what is defined, to pick from


def refused(raw: dict[str, Any], change: Any) -> str:
    """The registry's complaint about `raw` once `change` has altered a copy of it."""
    data = copy.deepcopy(raw)
    change(data)
    with pytest.raises(RegistryError) as caught:
        parse_registry(data)
    return str(caught.value)


def test_response_declarations_are_read_as_declared(raw: dict[str, Any]) -> None:
    providers = parse_registry(raw).providers
    incus = providers["incus"].response
    assert not isinstance(incus, str) and incus.data == "metadata" and incus.async_ is not None
    assert (incus.async_.when, incus.async_.keep) == ({"type": "async"}, ("operation", "metadata"))
    assert providers["exoscale"].response == "json"
    assert providers["nirvana"].errors.words == ("error", "message", "details")  # the default
    assert providers["scaleway"].errors.per_field == "fields" and providers["scaleway"].paging is not None
    assert [key for key, provider in providers.items() if provider.paging] == ["scaleway", "portainer"]
    assert providers["portainer"].paging is not None and providers["portainer"].paging.next_page is None
    assert [key for key, provider in providers.items() if provider.retry_after_field] == ["exoscale"]


@pytest.mark.parametrize(
    ("provider", "key", "value", "expected"),
    [
        ("incus", "response", "incus-envelope", "provider 'incus' field 'response.json': Input should be 'json'"),
        ("incus", "response", {"data": "metadata", "asynk": {}}, "provider 'incus' field 'response.envelope.asynk'"),
        ("incus", "response", {"data": "metadata", "async": {"when": {}, "keep": ["operation"]}},
         "provider 'incus' field 'response.envelope.async.when'"),
        ("scaleway", "paging", {"total": "X-Total-Count"}, "provider 'scaleway' field 'paging.total': Extra inputs"),
        ("scaleway", "paging", {}, "provider 'scaleway' field 'paging': paging needs total_count or next_page"),
        ("scaleway", "paging", {"next_page": "Link: x"}, "provider 'scaleway' field 'paging.next_page'"),
        ("scaleway", "errors", {"words": []}, "provider 'scaleway' field 'errors.words'"),
        ("scaleway", "errors", {"word": ["type"]}, "provider 'scaleway' field 'errors.word': Extra inputs"),
        ("exoscale", "retry_after_field", ["retry_after"], "provider 'exoscale' field 'retry_after_field'"),
    ],
)  # fmt: skip
def test_a_mistake_in_a_response_declaration_names_the_provider_and_field(
    raw: dict[str, Any], provider: str, key: str, value: Any, expected: str
) -> None:
    assert expected in refused(raw, lambda data: data["providers"][provider].__setitem__(key, value))


def test_narrows_is_a_boolean_on_query_and_option_parameters_only(raw: dict[str, Any]) -> None:
    assert "params.max_bytes.narrows: Input should be a valid boolean" in refused(
        raw, lambda data: data["params"]["max_bytes"].__setitem__("narrows", "yes")
    )
    image = refused(raw, lambda data: data["providers"]["scaleway"]["params"]["image"].__setitem__("narrows", True))
    assert "tool 'get-instance-image' field 'params.image_id.narrows': a path parameter does not narrow" in image
    body = {"name": "label", "in": "body", "narrows": True, "description": "A label."}
    message = broken(raw, "update-image-2", params=["zone", "image", body])
    assert "tool 'update-image-2' field 'params.label.narrows': a body parameter does not narrow a result" in message


def test_fixed_body_fields_go_with_a_body_and_never_shadow_a_parameter(raw: dict[str, Any]) -> None:
    """`body:` states a write's constant fields (Docker's AttachStdout); the agent's own fields stay its own."""
    fixed = load_registry().by_name["create-docker-exec"].body
    assert fixed == {"AttachStdout": True, "AttachStderr": True}
    message = broken(raw, "list-docker-containers", body={"all": True})
    assert "tool 'list-docker-containers' field 'body': GET requests carry no body" in message
    message = broken(raw, "create-docker-exec", body={**fixed, "Cmd": ["ls"]})
    assert "tool 'create-docker-exec' field 'body': fixed body field 'Cmd' clashes with a parameter" in message
    message = broken(raw, "create-docker-exec", body={"When": datetime.date(2025, 1, 1)})  # YAML reads 2025-01-01
    assert "tool 'create-docker-exec' field 'body.When': input was not a valid JSON value" in message


def test_every_required_id_says_where_its_values_are_found(registry: Registry) -> None:
    """Id closure: an agent that knows no ids can find each one through a tool of this server."""
    for tool in registry.tools:
        for param in tool.params:
            if param.required and param.is_id:
                assert param.listed_by or param.from_results, (tool.name, param.name)
            if param.listed_by:
                assert param.listed_by in registry.by_name, (tool.name, param.name)
                assert param.listed_by in param.description, (tool.name, param.name)  # the agent reads it there


def test_a_lister_that_does_not_exist_is_refused(raw: dict[str, Any]) -> None:
    params = ["instance", "zone", {"name": "x_id", "in": "query", "listed_by": "list-xs", "description": "X."}]
    message = broken(raw, "stop-compute-instance", params=params)
    assert "tool 'stop-compute-instance' field 'params.x_id.listed_by': no tool named 'list-xs'" in message
    unlisted = ["instance", "zone", {"name": "x_id", "in": "query", "required": True, "description": "X."}]
    assert "a required id must name the tool that lists its values" in broken(raw, "stop-compute-instance",
                                                                              params=unlisted)  # fmt: skip


def test_waiting_and_an_outcome_need_a_tool_that_returns_an_operation(raw: dict[str, Any]) -> None:
    message = broken(raw, "list-instances", wait_default=True)
    assert "tool 'list-instances' field 'wait_default'/'outcome': only a tool with returns_operation waits" in message
    message = broken(raw, "list-instances", outcome={"pick": {"n": "name"}, "under": "/1.0/instances/"})
    assert "tool 'list-instances' field 'wait_default'/'outcome'" in message
    assert "tool 'exec-instance' field 'wait_default'/'outcome'" in broken(raw, "exec-instance", returns_operation=None)


def exec_outcome(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    tool = next(t for t in raw["tools"] if t["name"] == "exec-instance")
    return {**copy.deepcopy(tool["outcome"]), **changes}


def test_an_outcome_reads_files_only_under_a_place_its_parameters_name(raw: dict[str, Any]) -> None:
    message = broken(raw, "exec-instance", outcome=exec_outcome(raw, under="/1.0/instances/{instance}/logs/"))
    assert "tool 'exec-instance' field 'outcome.under': placeholder {instance} is not a parameter" in message
    message = broken(raw, "exec-instance", outcome=exec_outcome(raw, under="/1.0/instances/{name}/logs"))
    assert "tool 'exec-instance' field 'outcome.under'" in message  # a place ends with /, so x/logs2 is not in it
    message = broken(raw, "exec-instance", outcome=exec_outcome(raw, remove="later"))
    assert "tool 'exec-instance' field 'outcome.remove'" in message


def test_an_outcome_with_files_needs_a_max_bytes_parameter(raw: dict[str, Any]) -> None:
    tool = next(t for t in raw["tools"] if t["name"] == "exec-instance")
    params = [p for p in tool["params"] if p != "max_bytes" and not (isinstance(p, dict) and p["name"] == "max_bytes")]
    assert len(params) == len(tool["params"]) - 1
    message = broken(raw, "exec-instance", params=params)
    assert "tool 'exec-instance' field 'outcome.files': reading files needs a max_bytes parameter" in message
    data = copy.deepcopy(raw)  # picking fields alone reads nothing: no budget needed
    entry = next(t for t in data["tools"] if t["name"] == "exec-instance")
    entry["params"], entry["outcome"] = params, exec_outcome(raw, files={})
    assert parse_registry(data).by_name["exec-instance"].outcome is not None


def test_confirm_only_is_for_destructive_tools_and_names_parameters(raw: dict[str, Any]) -> None:
    hints = {"readOnly": False, "destructive": False, "idempotent": False, "openWorld": True}
    message = broken(raw, "update-instance-state", hints=hints)
    assert "tool 'update-instance-state' field 'confirm_only': only a destructive tool asks for confirmation" in message
    message = broken(raw, "update-instance-state", confirm_only={"verb": ["stop"]})
    assert "tool 'update-instance-state' field 'confirm_only': 'verb' is not a parameter" in message
    message = broken(raw, "update-instance-state", confirm_only={"action": "stop"})  # one value, not a list
    assert "tool 'update-instance-state' field 'confirm_only.action'" in message


@pytest.mark.parametrize("confirm_only", [{}, {"action": []}, {"action": ["stopp", "restart"]}])
def test_a_confirm_only_that_asks_about_nothing_is_refused(raw: dict[str, Any], confirm_only: dict[str, Any]) -> None:
    message = broken(raw, "update-instance-state", confirm_only=confirm_only)
    assert "tool 'update-instance-state' field 'confirm_only" in message
    assert "nothing would be asked" in message or "must be some of action's values" in message


def test_the_new_incus_mechanisms_are_read_as_declared() -> None:
    registry = load_registry()
    execs, state = registry.by_name["exec-instance"], registry.by_name["update-instance-state"]
    assert registry.providers["incus"].operation is not None
    assert registry.providers["incus"].operation.answer == "metadata"
    assert execs.wait_default and execs.outcome is not None and execs.outcome.remove
    assert execs.outcome.under == "/1.0/instances/{name}/logs/"
    assert execs.outcome.files == {"stdout": "metadata.output.1", "stderr": "metadata.output.2"}
    assert execs.outcome.pick == {"exit_code": "metadata.return"}
    assert state.wait_default and state.confirm_only == {"action": ("stop", "restart")}
    assert state.outcome is not None and state.outcome.brief  # the status read back, with the operation's id
    assert (state.outcome.read, state.outcome.show) == ("/1.0/instances/{name}", {"status": "status"})


def test_wait_defaults_to_true_only_where_wait_default_says_so() -> None:
    registry = load_registry()
    incus = registry.providers["incus"]
    execs = input_schema(registry.by_name["exec-instance"], incus)["properties"]["wait"]
    follow = input_schema(registry.by_name["wait-operation"], incus)["properties"].get("wait")
    assert execs == {"type": "boolean", "default": True, "description": "Wait for the final state."}
    stop = input_schema(registry.by_name["stop-compute-instance"], registry.providers["exoscale"])["properties"]
    assert stop["wait"] == {"type": "boolean", "description": "Wait for the final state."}  # no default: false
    assert follow is None


def test_confirm_given_is_for_tools_that_do_not_ask_already_and_names_parameters(raw: dict[str, Any]) -> None:
    message = broken(raw, "delete-compute-instance", confirm_given=["id"])
    assert "tool 'delete-compute-instance' field 'confirm_given': this tool asks on every call already" in message
    message = broken(raw, "create-docker-exec", confirm_given=["Environment"])
    assert "tool 'create-docker-exec' field 'confirm_given': 'Environment' is not a parameter" in message
    message = broken(raw, "create-docker-exec", confirm_given=[])
    assert "names no argument, so nothing would be asked" in message


def test_review_is_for_tools_that_ask_and_fills_its_path_from_parameters(raw: dict[str, Any]) -> None:
    review = {"path": "/api/endpoints/{endpointId}/docker/exec/{exec}/json", "pick": {"command": "Path"}}
    message = broken(raw, "execute-websocket", review=review)
    assert "tool 'execute-websocket' field 'review.path': placeholder {exec} is not a parameter" in message
    message = broken(raw, "attach-websocket", review={"path": "/x", "pick": {"a": "b"}})
    assert "tool 'attach-websocket' field 'review': only a tool that asks the user shows what runs" in message


def test_only_reads_is_for_read_only_websockets_naming_a_tool_that_exists(raw: dict[str, Any]) -> None:
    only = next(t for t in raw["tools"] if t["name"] == "get-websocket-stream-2")["only_reads"]
    message = broken(raw, "get-websocket-stream-2", only_reads={**only, "instead": "run-it"})
    assert "tool 'get-websocket-stream-2' field 'only_reads.instead': no tool named 'run-it'" in message
    message = broken(raw, "get-websocket-stream", only_reads=only)
    assert "tool 'get-websocket-stream' field 'only_reads': only read-only websocket tools refuse streams" in message


def test_what_asks_and_what_it_shows_are_read_as_declared() -> None:
    registry = load_registry()
    exec_, stream, reader = (
        registry.by_name[n] for n in ("execute-websocket", "get-websocket-stream", "get-websocket-stream-2")
    )
    assert exec_.review is not None and exec_.review.pick["arguments"] == "ProcessConfig.arguments"
    assert stream.review is not None and stream.hints.destructive
    assert registry.by_name["create-docker-exec"].confirm_given == ("Env", "WorkingDir")
    assert reader.only_reads is not None and reader.only_reads.refuse == ("0", "control")
    assert "only_reads.read" in reader.steps()


def test_a_default_project_must_fill_a_parameter_some_tool_has(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["providers"]["scaleway"]["default_project"]["param"] = "project_id"
    with pytest.raises(RegistryError) as caught:
        parse_registry(data)
    assert "provider 'scaleway' field 'default_project.param': none of its tools has 'project_id'" in str(caught.value)


def test_descriptions_say_where_an_api_reports_no_such_field() -> None:
    """Issue 22 item 4: an agent asked to check protection or a failure's reason learns there is none to read."""
    registry = load_registry()
    assert "does not report destruction protection" in registry.by_name["retrieve-compute-instance-details"].description
    assert "gives no failure reason" in registry.by_name["get-nirvana-operation"].description
