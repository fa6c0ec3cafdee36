"""The output of a run: the table printed at the end and the JSON file, both from the one result dict."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import COMMON_TOOLS

START_UP = 1.10  # issue 23 item 1: cold start at most this times the bare server's


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def row(*cells: tuple[Any, str]) -> str:
    """One table line from (value, format spec) pairs."""
    return "   " + "".join(format(value, spec) for value, spec in cells)


def render(res: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    m = res["machine"]
    add(f"mcp-cloudops bench  {res['started_at']}  ({res['elapsed_s']:.0f} s)")
    add(
        f"machine: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m.get('mem_total_gb', '?')} GB RAM"
    )
    add(f"         {m['platform']}; Python {m['python']}, mcp {m['mcp']}, httpx2 {m['httpx2']}")
    add(f"peer:    {res['peer']['status']}")
    if not m.get("sniffio_installed", True):
        add("env:     sniffio is not installed: httpcore retries a failing `import sniffio` several times per request")
    noise = res.get("machine_noise")
    if noise:
        share = noise["other_processes_share_of_capacity"] or 0.0
        add(f"noise:   load average at start {noise['loadavg_at_start'][0]}, other processes used "
            f"{noise['other_processes_cpu_s']} CPU-s ({share:.1%} of capacity) during the run; "
            f"hypervisor steal {noise.get('steal_cpu_s', 0)} CPU-s")  # fmt: skip
    add("")
    render_cold(res, add)
    render_context(res, add)
    render_calls(res, add)
    render_throughput(res, add)
    render_shared(res, add)
    errs = res["errors"]
    add(f"ERRORS: {errs['count']}" + ("" if not errs["count"] else "  <-- FAIL: " + " | ".join(errs["first"][:5])))
    for note in res.get("notes", []):
        add(f"note: {note}")
    return "\n".join(lines)


def render_cold(res: dict[str, Any], add: Callable[[str], None]) -> None:
    cs = res.get("cold_start")
    if cs:
        add("1. COLD START  spawn -> tools/list answer over stdio, no sandbox, no credentials")
        add(f"   (median of {cs['runs']} per subject, interleaved round by round, one warm-up each)")
        add(
            row(("subject", "<34"), ("median s", ">9"), ("min", ">7"), ("max", ">7"), ("x bare", ">8"), ("tools", ">7"))
        )
        for s in cs["subjects"].values():
            sec = s["seconds"]
            add(row((s["label"], "<34"), (sec["p50"], ">9.3f"), (sec["min"], ">7.2f"), (sec["max"], ">7.2f"),
                    (s["ratio_to_bare"], ">8.2f"), (s["tools"], ">7")))  # fmt: skip
        ratio = cs["subjects"]["ours"]["ratio_to_bare"]
        add(f"   mcp-cloudops / bare = {ratio:.2f}x  (target <= {START_UP}x: {verdict(ratio <= START_UP)})")
        if "accounts" in cs["subjects"]:
            ratio = cs["subjects"]["accounts"]["ratio_to_bare"]
            passed = verdict(ratio <= START_UP)
            add(f"   with 10 accounts in a file / bare = {ratio:.2f}x  (target <= {START_UP}x: {passed})")
        if "peer" in cs["subjects"]:
            r = cs["subjects"]["ours"]["seconds"]["p50"] / cs["subjects"]["peer"]["seconds"]["p50"]
            add(f"   mcp-cloudops / fastmcp peer = {r:.2f}x")
    it = res.get("importtime")
    if it:
        total, split = it["total_import_ms"], it["ours_split_ms"]
        add(f"   -X importtime (median of {it['runs']}): all imports {total['ours']:.0f} ms ours, "
            f"{total['bare']:.0f} ms bare")  # fmt: skip
        add(f"   ours = modules the bare server also imports {split['sdk_floor_modules']:.0f} ms "
            f"+ modules only ours imports {split['extra_modules']:.0f} ms")  # fmt: skip
        extra = ", ".join(f"{p['package']} {p['self_ms']:.0f}" for p in it["extra_by_package"][:9])
        add(f"   extra modules by package, self ms: {extra}")
        for r in it["extra_third_party_by_importer"][:4]:
            pk = ", ".join(f"{k} {v:.0f}" for k, v in list(r["packages"].items())[:7])
            add(f"     third-party imported under {r['via']}: {r['self_ms']:.0f} ms ({pk})")
        mods = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f}" for r in it["mcp_cloudops_modules"][:5])
        add(f"   mcp_cloudops modules, cumulative ms: {mods}")
    sp = res.get("startup_profile")
    if sp:
        c, u = sp["calls_per_start"], sp["unit_ms"]
        add(f"   one start (cProfile) calls load_registry x{c['load_registry']}, build_server x{c['build_server']}, "
            f"make_tool x{c['make_tool']}")  # fmt: skip
        add(f"   warm unit cost: load_registry {u.get('load_registry')} ms, build_server {u.get('build_server')} ms, "
            f"yaml.safe_load(tools.yaml) {u.get('yaml.safe_load(tools.yaml)')} ms "
            f"(CSafeLoader {u.get('yaml CSafeLoader(tools.yaml)')} ms)")  # fmt: skip
    add("")


def render_context(res: dict[str, Any], add: Callable[[str], None]) -> None:
    cc = res.get("context_cost")
    if not cc:
        return
    add("2. CONTEXT COST  tools/list result (legacy mode; model_dump(by_alias, exclude_none, json); compact JSON)")
    add("   tokens ~= bytes/4: an estimate, no tokenizer")
    add(row(("server / toolset", "<48"), ("tools", ">6"), ("bytes", ">9"), ("B/tool", ">8"), ("~tok", ">8"),
            ("~tok/tool", ">10")))  # fmt: skip

    def line(label: str, v: dict[str, Any]) -> None:
        bytes_ = v.get("result_bytes", v.get("bytes"))
        add(row((label, "<48"), (v["tools"], ">6"), (bytes_, ">9"), (v["bytes_per_tool"], ">8.0f"),
                (bytes_ // 4, ">8"), (v["bytes_per_tool"] / 4, ">10.0f")))  # fmt: skip

    o = cc["ours"]
    line("mcp-cloudops (all)", o)
    for g, v in o["by_group"].items():
        line(f"  toolset {g}", v)
    for key, label in (
        ("two_accounts", "mcp-cloudops, two accounts on every provider"),
        ("ours_common", "mcp-cloudops, the peer's 23 tools"),
        ("peer", "fastmcp peer, validate_output=False (served)"),
        ("peer_default", "fastmcp peer, default validate_output=True"),
    ):
        if key in cc:
            line(label, cc[key])
    add(f"   average {o['bytes_per_tool']:.0f} B/tool (target <= 900: {verdict(o['bytes_per_tool'] <= 900)})")
    if "two_accounts" in cc:
        two = cc["two_accounts"]["bytes_per_tool"]
        add(f"   with two accounts on every provider {two:.0f} B/tool (target <= 900: {verdict(two <= 900)})")
    render_dynamic(cc, add)
    add("   what the bytes are (mcp-cloudops, B/tool and share; each = what removing it saves):")
    parts = sorted(o["breakdown_bytes_per_tool"].items(), key=lambda kv: -kv[1])
    for chunk in (parts[:5], parts[5:10], parts[10:]):
        add("     " + ", ".join(f"{k} {v:.0f} ({o['breakdown_share'][k]:.0%})" for k, v in chunk if v))
    if "peer" in cc:
        pp = sorted(cc["peer"]["breakdown_bytes_per_tool"].items(), key=lambda kv: -kv[1])
        add("   fastmcp peer (served), B/tool: " + ", ".join(f"{k} {v:.0f}" for k, v in pp[:6] if v))
    add("   biggest tools: " + ", ".join(f"{t['name']} {t['bytes']}" for t in o["per_tool"][:4]))
    add("   costliest param descriptions (count x text = bytes):")
    for d in o["top_param_descriptions"][:4]:
        text = d["text"] if len(d["text"]) <= 70 else d["text"][:67] + "..."
        add(f'     {d["count"]:>3}x "{text}" = {d["bytes_total"]}')
    add(
        "   costliest enums: "
        + "; ".join(f"{e['count']}x {e['enum'][:30]}... = {e['bytes_total']}" for e in o["top_enums"][:2])
    )
    add(
        '   what-if, cuts we chose not to make (docs/performance.md, "What tools/list shows"), measured on our entries:'
    )
    for w in cc["what_if"]:
        tail = f"  -> {w['bytes_per_tool_after']:.0f} B/tool" if "bytes_per_tool_after" in w else ""
        add(f"     -{w['saves_per_tool']:>5.1f} B/tool  {w['change']}{tail}")
    add("")


def render_dynamic(cc: dict[str, Any], add: Callable[[str], None]) -> None:
    """Default vs dynamic toolsets: tools/list bytes at connect and after enable-toolset, next to the peer's,
    and the tool calls an agent makes from connect until the tool it wants is listed."""
    d = cc.get("dynamic")
    if not d:
        return
    o, reach = cc["ours"], d["calls_to_reach"]
    add("   default vs --dynamic-toolsets: tools/list bytes, and the tool calls an agent makes from connect until")
    add("   the tool it wants is listed (dynamic: list-toolsets, enable-toolset, then tools/list on list_changed)")
    add(row(("listing", "<48"), ("tools", ">6"), ("bytes", ">9"), ("~tok", ">8"), ("% default", ">10"),
            ("calls to reach", ">16")))  # fmt: skip

    def line(label: str, tools: int, bytes_: int, calls: Any) -> None:
        calls = "not reached" if calls is None else calls
        add(row((label, "<48"), (tools, ">6"), (bytes_, ">9"), (bytes_ // 4, ">8"),
                (f"{bytes_ / o['result_bytes']:.1%}", ">10"), (calls, ">16")))  # fmt: skip

    line("mcp-cloudops default, at connect", o["tools"], o["result_bytes"], reach["default_max"])
    first = d["at_connect"]
    line("mcp-cloudops dynamic, at connect", first["tools"], first["result_bytes"], "")
    for g, v in d["after_enable"].items():
        line(f"  after enable-toolset {g}", v["tools"], v["result_bytes"], v["calls_to_reach"])
    if "peer" in cc:
        line("fastmcp peer (served), at connect", cc["peer"]["tools"], cc["peer"]["result_bytes"], 0)
    size, target = first["result_bytes"], d["first_list_target_bytes"]
    add(f"   dynamic first tools/list {size} bytes (target <= {target}: {verdict(size <= target)})")
    worst, most = reach["dynamic_max"], reach["dynamic_target_max"]
    ok = worst is not None and worst <= most and reach["default_max"] == 0
    add(f"   calls to reach any tool: default {reach['default_max']}, dynamic at most {worst} "
        f"(target <= {most}: {verdict(ok)})")  # fmt: skip


def pinning(res: dict[str, Any]) -> str:
    """Where the processes of the calls over HTTP ran (bench/sandbox.py, pinned)."""
    cores = res.get("http_cores")
    if not cores:
        return "   over HTTP: client, upstream and server share the machine's cores (not pinned)"
    return (f"   over HTTP: client and upstream pinned to cores {cores['load_generator_and_upstream']}, the server "
            f"under test to {cores['server_under_test']}")  # fmt: skip


def render_calls(res: dict[str, Any], add: Callable[[str], None]) -> None:
    pc = res.get("per_call")
    if not pc:
        return
    add("3. PER-CALL OVERHEAD  ms, same upstream request against the sandbox, interleaved call by call;")
    add("   added = MCP percentile - direct percentile (direct = httpx2, pooled, same auth); in memory, each server")
    add(f"   alone in a process, turns of {pc.get('in_memory', {}).get('block', '?')} calls, direct calls pooled")
    add(pinning(res))
    add(row(("path / server", "<30"), ("tool", "<24"), ("direct p50", ">11"), ("p99", ">7"), ("mcp p50", ">9"),
            ("p99", ">7"), ("added p50", ">10"), ("p99", ">7")))  # fmt: skip

    def line(label: str, tool: str, d: dict[str, float], v: dict[str, Any]) -> None:
        mcp = v["mcp_ms"]
        add(row((label, "<30"), (tool, "<24"), (d["p50"], ">11.2f"), (d["p99"], ">7.2f"), (mcp["p50"], ">9.2f"),
                (mcp["p99"], ">7.2f"), (v["added_p50_ms"], ">10.2f"), (v["added_p99_ms"], ">7.2f")))  # fmt: skip

    mem = pc.get("in_memory", {})
    for key in ("ours", "floor", "peer"):
        for t, v in mem.get(key, {}).items():
            line(f"in-memory {res['servers'][key]}", t, v["direct_ms"], v)
    http = pc.get("http", {})
    for t in COMMON_TOOLS:
        for key, v in http.get(t, {}).items():
            if key != "direct_ms":
                line(f"HTTP {res['servers'][key]}", t, http[t]["direct_ms"], v)
    for t, v in mem.get("library", {}).items():
        d2, d1 = v["direct"]["p50"], v["direct_httpx"]["p50"]
        add(f"   {t}: direct with httpx2 p50 {d2:.2f} ms vs httpx 0.28 {d1:.2f}"
            " ms (same process, interleaved): the HTTP library's share")  # fmt: skip
    if "ours_profile" in mem:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in list(mem["ours_profile"]["share_by_package"].items())[:9])
        add(f"   where an in-memory call's time goes (cProfile self time, client + server): {shares}")
        funcs = ", ".join(
            f"{k} {v:.1%}" for k, v in list(mem["ours_profile"]["mcp_cloudops_share_by_function"].items())[:4]
        )
        add(f"     of which mcp_cloudops: {funcs}")
    if "ours" in mem:
        worst = max(v["added_p50_ms"] for v in mem["ours"].values())
        add(f"   in-memory added p50, worst tool: {worst:.2f} ms (target < 2 ms: {verdict(worst < 2)})")
    for t in COMMON_TOOLS:  # issue 23 item 6: at most 1.25x the floor's added latency, p50 and p99
        for where, ours, floor in (
            ("in-memory", mem.get("ours", {}).get(t), mem.get("floor", {}).get(t)),
            ("HTTP", http.get(t, {}).get("ours"), http.get(t, {}).get("floor")),
        ):
            if ours and floor:
                ratios = [
                    ours[k] / floor[k] if floor[k] > 0 else float("inf") for k in ("added_p50_ms", "added_p99_ms")
                ]
                add(f"   {t}: {where} added p50/p99 ours/floor {ratios[0]:.2f}x / {ratios[1]:.2f}x "
                    f"(target <= 1.25x: {verdict(max(ratios) <= 1.25)})")  # fmt: skip
    for t in COMMON_TOOLS:  # issue 23 item 2: at most 0.8x the peer's added latency in memory, 0.9x over HTTP
        for where, ours, peer, most in (
            ("in-memory", mem.get("ours", {}).get(t), mem.get("peer", {}).get(t), 0.8),
            ("HTTP", http.get(t, {}).get("ours"), http.get(t, {}).get("peer"), 0.9),
        ):
            if ours and peer:
                a, b = (ours["added_p50_ms"], ours["added_p99_ms"]), (peer["added_p50_ms"], peer["added_p99_ms"])
                ratios = [x / y if y > 0 else float("inf") for x, y in zip(a, b, strict=True)]
                passed = verdict(max(ratios) <= most)
                add(f"   {t}: {where} added p50/p99 ours {a[0]:.2f} / {a[1]:.2f} ms vs peer {b[0]:.2f} / {b[1]:.2f}"
                    f" ms: {ratios[0]:.2f}x / {ratios[1]:.2f}x (target <= {most}x: {passed})")  # fmt: skip
    add("")


def render_throughput(res: dict[str, Any], add: Callable[[str], None]) -> None:
    tp = res.get("throughput")
    if not tp:
        return
    add(f"4. THROUGHPUT  streamable HTTP, one mcp.Client session per unit of concurrency, both tools alternately;"
        f" {tp['rounds']} rounds of {tp['duration_s']:g} s per level and server, in turns (calls/s: the median"
        " round); CPU in % of one core")  # fmt: skip
    add(pinning(res))
    add(row(("server", "<16"), ("conc", ">5"), ("calls/s", ">9"), ("p50 ms", ">8"), ("p99 ms", ">8"), ("server", ">8"),
            ("upstream", ">9"), ("client", ">8"), ("calls/server-CPU-s", ">19"), ("errors", ">7")))  # fmt: skip
    for level, r in tp["levels"].items():
        for key, v in r.items():
            cpu = v["cpu_percent_of_one_core"]
            add(row((res["servers"][key], "<16"), (level, ">5"), (v["calls_per_s"], ">9.1f"),
                    (v["latency_ms"]["p50"], ">8.2f"), (v["latency_ms"]["p99"], ">8.2f"), (cpu["server"], ">8.0f"),
                    (cpu["sandbox_upstream"], ">9.0f"), (cpu["bench_client"], ">8.0f"),
                    (v["calls_per_server_cpu_s"], ">19.0f"), (v["errors"], ">7")))  # fmt: skip
        if "ours" in r and "floor" in r and r["floor"]["calls_per_s"]:
            add(f"   {'':<21}ours/floor: calls/s {r['ours']['calls_per_s'] / r['floor']['calls_per_s']:.2f}x")
        if "ours" in r and "peer" in r and r["peer"]["calls_per_s"]:
            ratio = r["ours"]["calls_per_s"] / r["peer"]["calls_per_s"]
            add(f"   {'':<21}ours/peer: calls/s {ratio:.2f}x (target >= 1.1x: {verdict(ratio >= 1.1)}), "
                f"calls per server CPU-second "
                f"{r['ours']['calls_per_server_cpu_s'] / r['peer']['calls_per_server_cpu_s']:.2f}x")  # fmt: skip
            if int(level) >= 32:  # issue 23 item 3: no call starves longer than on the peer
                ours_p99, peer_p99 = r["ours"]["latency_ms"]["p99"], r["peer"]["latency_ms"]["p99"]
                add(f"   {'':<21}p99 ours {ours_p99:.0f} ms vs peer {peer_p99:.0f} ms "
                    f"(target <= peer: {verdict(ours_p99 <= peer_p99)})")  # fmt: skip
    mem = ", ".join(
        f"{res['servers'][k]} {v.get('rss_mb')} MB (peak {v.get('peak_rss_mb')})" for k, v in tp["memory_after"].items()
    )
    add(f"   server RSS after the run: {mem}")
    add("")


def render_shared(res: dict[str, Any], add: Callable[[str], None]) -> None:
    shared = res.get("shared_endpoint")
    if not shared:
        return
    held, alone = shared["sessions"], shared["stateless"]
    add("5. SHARED ENDPOINT  mcp-cloudops over streamable HTTP, MCP_CLOUDOPS_HTTP_MAX_CONNECTIONS=4096")
    lat = held["latency_ms"]
    add(f"   {held['sessions']} legacy sessions opened in {held['open_seconds']} s, kept open: server RSS "
        f"{held['rss_mb_before']} -> {held['rss_mb_with_sessions']} MB ({held['kb_per_session']} kB a session); "
        f"one call on each at once: p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms, "
        f"errors {held['errors']}")  # fmt: skip
    lat = alone["latency_ms"]
    add(f"   {alone['requests']} stateless 2026-07-28 requests over {alone['over_seconds']} s (at most "
        f"{alone['most_in_flight']} in flight): p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, errors "
        f"{alone['errors']}, server RSS {alone.get('rss_mb')} MB")  # fmt: skip
    add(f"   errors (target 0): {verdict(held['errors'] == 0 and alone['errors'] == 0)}")
    add("")


def write_json(res: dict[str, Any], out: Path) -> None:
    """The whole result dict, for comparing runs and for anything the table leaves out."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
