"""The frozen models tools.yaml is read into: providers, tools, their parameters and flows. Data only, and
the checks a single field can make; what spans fields is registry_checks.py's, loading is registry.py's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    StrictBool,
    Tag,
    field_validator,
    model_validator,
)

ID_NAME = re.compile(r"(^id$|[_-]id$|Id$)")  # a parameter naming an id an agent must find somewhere
EVERY_ZONE = "all"  # the zone a zonal listing (tools.yaml `zonal`) also takes: every zone at once

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
ParamLocation = Literal["path", "query", "body", "zone", "option"]


class _Frozen(BaseModel):
    # defer_build: one validator is built for the registry's whole tree when tools.yaml is first validated,
    # instead of one per class at import, each repeating its nested models' (~30 ms of start-up).
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)


class AuthSpec(_Frozen):
    scheme: Literal["exoscale-v2", "header", "bearer", "incus"]
    header: str | None = None
    key_env: str | None = None
    secret_env: str | None = None

    @model_validator(mode="after")
    def _fields_for_scheme(self) -> AuthSpec:
        needed = {
            "exoscale-v2": ("key_env", "secret_env"),
            "header": ("header", "secret_env"),
            "bearer": ("secret_env",),
            "incus": (),
        }[self.scheme]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"auth scheme {self.scheme!r} needs {', '.join(missing)}")
        return self

    @property
    def env_names(self) -> tuple[str, ...]:
        """The environment variables holding this provider's secrets."""
        return tuple(name for name in (self.key_env, self.secret_env) if name)


class OperationSpec(_Frozen):
    """How a provider's asynchronous operations are followed to their end."""

    poll: str = Field(pattern=r"^/.*\{id\}")  # GET path of one operation; {id} is the operation's id
    state_field: str  # the field holding the operation's state
    pending: tuple[str, ...] = Field(min_length=1)  # states that mean "not finished yet"
    success: tuple[str, ...] = Field(min_length=1)
    link_field: str | None = None  # dotted path to the link of the resource the operation acted on
    link_prefix: str | None = None  # the link's API-version prefix, replaced by our base URL
    tool: str | None = None  # the tool an agent calls to keep following an operation
    # Where a call's answer holds the operation (Incus: `metadata`, beside the operation's URL); the
    # whole answer when unset.
    answer: str | None = None
    # Keys whose values grant access to an operation (exec fds, join-token secrets): masked in every
    # result of the provider unless the server runs with --show-operation-secrets.
    secrets: tuple[str, ...] = ()


class AsyncAnswer(_Frozen):
    """An enveloped answer that starts background work: its fields that follow the work are kept whole."""

    when: dict[str, str | int | bool] = Field(min_length=1)  # body fields and the values that mark it
    keep: tuple[str, ...] = Field(min_length=1)  # fields the agent needs to follow the work


class Envelope(_Frozen):
    """An API that wraps every answer: the agent reads what is inside, not the wrapping."""

    data: str = Field(min_length=1)  # the field holding the answer itself
    async_: AsyncAnswer | None = Field(default=None, alias="async")


# `json`, or an envelope: told apart by the value's type, so a mistake is reported once, in its own terms.
ResponseFormat = Annotated[
    Annotated[Literal["json"], Tag("json")] | Annotated[Envelope, Tag("envelope")],
    Discriminator(lambda value: "json" if isinstance(value, str) else "envelope"),
]


class ErrorWords(_Frozen):
    """Where an error body says what went wrong: those words are quoted to the agent."""

    words: tuple[str, ...] = Field(default=("error", "message", "details"), min_length=1)  # in this order
    per_field: str | None = Field(default=None, min_length=1)  # maps each wrong argument to its problems


class Paging(_Frozen):
    """Headers that say how to reach the rest of a listing, surfaced as total_count and next_page."""

    total_count: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]+$")  # header: the number of items
    next_page: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]+$")  # Link header: rel="next" URL, page=N

    @model_validator(mode="after")
    def _says_something(self) -> Paging:
        if self.total_count is None and self.next_page is None:
            raise ValueError("paging needs total_count or next_page (a header name)")
        return self


class DefaultProject(_Frozen):
    """An account's default project (a variable of its), filled in where a call names none, as the
    provider's own CLI does: into parameter `param` of the tools that have it, unless the call gives one of
    `unless`; only for `methods` when listed (creating calls: a listing filter would hide public things)."""

    env: str
    param: str
    unless: tuple[str, ...] = ()
    methods: tuple[Method, ...] = ()


class Provider(_Frozen):
    key: str = ""
    title: str
    summary: str | None = Field(default=None, min_length=1, max_length=120)  # its toolset, in one line
    base_url: str | None
    sockets: tuple[str, ...] = ()  # unix sockets tried in order when neither base_url nor url_env gives a URL
    url_env: str
    auth: AuthSpec
    zones: tuple[str, ...] = ()
    default_zone: str | None = None
    zone_env: str | None = None
    response: ResponseFormat = "json"  # plain JSON, or the envelope every answer comes in
    operation: OperationSpec | None = None
    errors: ErrorWords = Field(default_factory=ErrorWords)
    paging: Paging | None = None  # only a provider that declares paging headers has them read
    retry_after_field: str | None = Field(default=None, min_length=1)  # error-body field: seconds to wait
    default_project: DefaultProject | None = None
    params: dict[str, Param] = Field(default_factory=dict)  # definitions the provider's tools name by key

    @model_validator(mode="after")
    def _zone_defaults(self) -> Provider:
        if self.default_zone is not None and self.default_zone not in self.zones:
            raise ValueError(f"default_zone {self.default_zone!r} is not one of zones")
        return self


class ParamSchema(_Frozen):
    """The JSON Schema subset a parameter may use. A misspelt or unknown keyword is refused (a JSON
    Schema validator would silently ignore it), and checking this costs far less at start-up."""

    type: Literal["string", "integer", "number", "boolean", "object", "array"] | None = None
    format: Literal["uuid"] | None = None  # the one format the server checks (schema.py)
    enum: list[Any] | None = Field(default=None, min_length=1)
    default: Any = None
    description: str | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    exclusiveMinimum: int | float | None = None
    exclusiveMaximum: int | float | None = None
    minLength: int | None = Field(default=None, ge=0)
    maxLength: int | None = Field(default=None, ge=0)
    pattern: str | None = None
    items: ParamSchema | None = None
    minItems: int | None = Field(default=None, ge=0)
    maxItems: int | None = Field(default=None, ge=0)
    uniqueItems: bool | None = None
    properties: dict[str, ParamSchema] | None = None
    required: list[str] | None = None
    additionalProperties: bool | ParamSchema | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from None
        return pattern


class Param(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    location: ParamLocation = Field(alias="in")
    required: bool = False
    description: str = Field(min_length=1)
    shape: ParamSchema = Field(default_factory=ParamSchema, alias="schema")
    narrows: StrictBool = False  # named when a result is cut: it makes the next call's result smaller
    # Where an agent finds this id's values: the tool whose result lists them, or (from_results) only
    # the result of an earlier call (an operation id). A required id must say one or the other.
    listed_by: str | None = None
    from_results: StrictBool = False

    @property
    def is_id(self) -> bool:
        """An id the agent must find somewhere: by its name (id, image_id, endpointId...) or a uuid format."""
        return ID_NAME.search(self.name) is not None or self.json_schema.get("format") == "uuid"

    @cached_property
    def json_schema(self) -> dict[str, Any]:
        """The schema exactly as tools.yaml states it."""
        return self.shape.model_dump(exclude_unset=True)


class Hints(_Frozen):
    """All four MCP hints, always stated: a missing hint is a mistake, not a default."""

    readOnly: StrictBool
    destructive: StrictBool
    idempotent: StrictBool
    openWorld: StrictBool


class FollowUp(_Frozen):
    """A GET made after a websocket session ends, to report what the stream cannot (e.g. an exit code)."""

    path: str = Field(pattern=r"^/")
    pick: dict[str, str] = Field(min_length=1)  # result key -> field of the follow-up's JSON


class Review(FollowUp):
    """A GET made before the user is asked, for a call that names what it runs only by id (a Docker exec,
    an Incus exec operation): the question shows what runs as the upstream reports it (`pick`: shown
    name -> dotted field), and says what the upstream does not report (`unreported`)."""

    unreported: str | None = None


class Target(_Frozen):
    """What a call acts on, read in the asking round so that the question names it as people know it (a
    name and a state, not a UUID); a target that cannot be read is an error, and nobody is asked."""

    read: str = Field(pattern=r"^/")  # GET, filled from the call's arguments, with its query arguments
    name: str  # dotted field of the read: the name people know it by
    show: tuple[str, ...] = ()  # dotted fields shown beside the name (a state, a type)


class Ask(_Frozen):
    """The words of a tool's question, stated with the tool: what the person allows (`action`, where
    {argument} is that argument's value), the target as read, and what follows (`consequence`: "cannot be
    undone" only where that is true)."""

    action: str = Field(min_length=1)
    target: Target | None = None
    consequence: str = Field(min_length=1)
    # What a remembered yes covers (--confirm-remember), where "this tool on the same ids" undersells it:
    # for a tool that runs commands, any command, e.g. "any command in the Incus instance {name}".
    covers: str | None = Field(default=None, min_length=1)


class Step(_Frozen):
    """A call to another tool of the registry, made inside a flow: the caller's arguments the tool also
    takes, plus fixed ones (`with`); `pick` names the fields of its result the flow reports."""

    tool: str
    fixed: dict[str, Any] = Field(default_factory=dict, alias="with")
    pick: dict[str, str] = Field(default_factory=dict)  # result key -> dotted field of the step's result


class Outcome(_Frozen):
    """What a finished operation came to (a command's exit code and output), read once a wait ends.

    `files` name fields of the operation holding API paths of text the operation wrote (Incus exec
    logs): read up to the call's max_bytes, only under `under` (filled with the call's arguments),
    then deleted when `remove` says so, since nothing else ever removes them.
    """

    pick: dict[str, str] = Field(default_factory=dict)  # result key -> dotted field of the operation
    files: dict[str, str] = Field(default_factory=dict)  # result key -> dotted field holding a file's path
    under: str | None = Field(default=None, pattern=r"^/.+/$")  # every file's path starts with this
    remove: bool = False
    # What the change came to, read back once the operation ended (an instance's new status): a GET of
    # `read` (filled from the call's arguments, with its query arguments), and its fields `show` keeps.
    read: str | None = Field(default=None, pattern=r"^/")
    show: dict[str, str] = Field(default_factory=dict)  # result key -> dotted field of the read
    # The result is the outcome and the operation's id alone, not the whole operation: what an agent
    # checks its work with, in a few hundred characters (the journal still records the id).
    brief: bool = False

    @model_validator(mode="after")
    def _whole(self) -> Outcome:
        if self.files and self.under is None:
            raise ValueError("files need under: where the files an operation wrote may be read")
        if (self.read is None) != (not self.show):
            raise ValueError("read and show go together: the GET, and the fields kept from it")
        return self


class AttachAll(_Frozen):
    """An exec whose command starts only once all its streams are attached (Incus): without `secret`,
    the tool attaches to every stream the way the vendor's CLI does, never writing stdin."""

    secret: str  # the query parameter carrying one stream's secret; given by the caller, one stream is read
    read: Step  # the operation, to find each stream's secret
    fds: str  # dotted field of `read`'s result: stream name -> secret
    streams: dict[Literal["stdin", "stdout", "stderr"], str]  # stream -> its name in `fds`
    finish: Step  # read once the streams end: what the command came to (exit code, status)


class OnlyReads(_Frozen):
    """A read-only tool given one stream's secret (Incus `?public` websockets): it refuses the streams
    whose connection could start or steer an exec (stdin, control), since connecting the last of an
    exec's streams starts its command."""

    secret: str  # the query parameter carrying the stream's secret
    read: Step  # the operation, to find which stream the secret opens
    fds: str  # dotted field of `read`'s result: stream name -> secret
    refuse: tuple[str, ...] = Field(min_length=1)  # stream names never connected
    instead: str  # the tool that runs the command, asking the user first: named in the refusal


class Pages(_Frozen):
    """How a listing is paged, so a result cut to the output cap can say where the next call resumes.

    style: `page` (a page number and a page size: any item can begin a page of a well-chosen size),
    `cursor` (opaque: a call can only resume where a page began) or `start` (the index of the first item).
    """

    style: Literal["page", "cursor", "start"]
    at: str  # the query parameter saying where a page begins: page number, cursor or start index
    size: str  # the query parameter giving the page size
    first: int = 1  # the number of the first page, or the index of the first item
    next: str | None = None  # cursor style: dotted path of the upstream's next cursor in the result


class Advice(_Frozen):
    """The next step after a failure the generic one would misdirect (an exec in a stopped instance is a
    400, whose generic advice is to fix the arguments): matched on the status and the upstream's words."""

    status: int = Field(ge=400, le=599)
    says: str = Field(min_length=1)  # a piece of the upstream's message, compared case-insensitively
    next: str = Field(min_length=1)  # what to do instead; names `tool`
    tool: str  # the tool that removes the cause: checked to exist


class Find(_Frozen):
    """An item a read must hold for the call to have worked: in the list at `within`, one whose fields equal
    `where`'s values (filled from the arguments); with `then`, that item's own list must hold one matching `has`."""

    within: str  # dotted path of the list (`items`)
    where: dict[str, str] = Field(min_length=1)  # item field -> value ({argument})
    then: str | None = None  # dotted path of a list inside the found item (a pod's spec.containers)
    has: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _paired(self) -> Find:
        if (self.then is None) != (not self.has):
            raise ValueError("then and has go together: the inner list, and what one of its items must be")
        return self


class Check(_Frozen):
    """One read that tells a cause apart: a field that must hold one of `expect`'s values (a Portainer
    environment's Type), or an item `find` must find (a namespace, a pod). `say` when it fails: {argument},
    {value} (the field as read) and {found} (what `names` calls that value)."""

    read: str = Field(pattern=r"^/")  # GET, filled from the call's arguments
    expect: dict[str, tuple[JsonValue, ...]] = Field(default_factory=dict)
    names: dict[str, str] = Field(default_factory=dict)  # a value, as text -> what people call it
    find: Find | None = None
    say: str = Field(min_length=1)
    tool: str  # the tool `say` names, that shows the right values: checked to exist

    @model_validator(mode="after")
    def _one_test(self) -> Check:
        if bool(self.expect) == (self.find is not None):
            raise ValueError("a check either expects field values or finds an item")
        return self


class Diagnosis(_Frozen):
    """Why a call failed when the upstream's answer does not say (a Kubernetes path on a Docker environment
    answers "page not found"; a pod exec that cannot start just closes): reads made after the failure, in
    order; the first check that fails names the cause and the tool showing the right values."""

    status: tuple[int, ...] = ()  # after these HTTP statuses
    silent: bool = False  # after a stream that closed before any output
    checks: tuple[Check, ...] = Field(min_length=1)
    otherwise: str | None = None  # silent, and every check passed: what is left (the command could not start)

    @model_validator(mode="after")
    def _triggered(self) -> Diagnosis:
        if not self.status and not self.silent:
            raise ValueError("a diagnosis runs after some statuses, or after a silent stream")
        return self


class ToolSpec(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    provider: str
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    method: Method
    path: str = Field(pattern=r"^/")
    query: dict[str, str] = Field(default_factory=dict)
    # Fixed body fields, sent with every call (e.g. Docker's AttachStdout: true): an API's required
    # constant is stated once here, not left to the agent.
    body: dict[str, JsonValue] = Field(default_factory=dict)
    websocket: bool = False
    demux: Literal["docker"] | None = None  # the stream carries Docker's 8-byte frame headers (non-TTY)
    after: FollowUp | None = None
    attach_all: AttachAll | None = None
    only_reads: OnlyReads | None = None
    pages: Pages | None = None
    returns_operation: bool = False  # answers with an async operation: the server can wait for it
    wait_default: bool = False  # `wait` unless the agent says otherwise (a call whose point is its result)
    outcome: Outcome | None = None  # read from a finished operation (needs returns_operation)
    # Destructive only for these argument values (e.g. action: [stop, restart]): other calls are not
    # asked about. The hint stays destructive, as MCP hints are per tool.
    confirm_only: dict[str, tuple[JsonValue, ...]] | None = None
    # A tool that changes nothing at once asks when one of these arguments is given: what they set is
    # never shown again before it runs (Docker does not report an exec's environment).
    confirm_given: tuple[str, ...] | None = None
    review: Review | None = None  # read before asking: what the call runs, when it names it only by id
    ask: Ask | None = None  # the question's words: every tool that asks has them
    long_poll: str | None = None  # query param holding an upstream-side wait: served in short chunks
    # The result is a credential (a password, a signed console URL): a capability of its own, so the
    # tool is not offered under --read-only and asks the user first like a destructive one.
    credential: bool = False
    # The tool that shows whether a write happened when its outcome is unknown (a dropped connection
    # after the request went out): by default the tool listing the first required id it takes.
    lookup: str | None = None
    when_failed: tuple[Advice, ...] = ()  # failures whose cause another tool removes, first match wins
    diagnose: Diagnosis | None = None  # failures whose cause only a read shows
    # A listing of one zone whose result key (`instances`) holds its items: it also takes zone "all",
    # every zone at once, merged. Not for what every zone lists alike (SSH keys, instance types).
    zonal: str | None = None
    hints: Hints
    params: tuple[Param, ...] = ()

    def params_in(self, *locations: ParamLocation) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.location in locations)

    def asks_every_zone(self, args: Mapping[str, Any]) -> bool:
        """Whether this call of a zonal listing asks for every zone at once (zone "all")."""
        return self.zonal is not None and any(args.get(p.name) == EVERY_ZONE for p in self.params_in("zone"))

    @property
    def mutating(self) -> bool:
        return not self.hints.readOnly

    @property
    def state_lookup(self) -> str | None:
        """Where to read the state a write may or may not have changed (tools.yaml `lookup`, else the
        lister of its first required id)."""
        return self.lookup or next((p.listed_by for p in self.params if p.required and p.listed_by), None)

    def steps(self) -> dict[str, Step]:
        """The other tools this tool's flow calls, by the field naming each: they must be enabled with it."""
        steps = {}
        if self.attach_all is not None:
            steps |= {"attach_all.read": self.attach_all.read, "attach_all.finish": self.attach_all.finish}
        if self.only_reads is not None:
            steps["only_reads.read"] = self.only_reads.read
        return steps


class MetaTool(_Frozen):
    """A tool of the server itself, not of an upstream: its public name and words live here too."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    param: str | None = None  # the description of its one argument, if it takes one


class Discovery(_Frozen):
    """The tools of --dynamic-toolsets: a session starts with these two and enables toolsets itself."""

    list: MetaTool
    enable: MetaTool

    @model_validator(mode="after")
    def _enable_takes_a_toolset(self) -> Discovery:
        if self.enable.param is None:
            raise ValueError("enable needs param: the description of its toolset argument")
        return self
