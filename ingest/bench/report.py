"""Targets from the issue, PASS/MISS per target, and the summary table a person reads.

Targets (ingest issue): backlog drain >= 40,000 msg/s with zero lost points and ingest peak RSS
<= 150 MB; live p99 publish -> queryable <= 1 s at 10,000 msg/s.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TARGETS", "evaluate_targets", "summary_table"]

DRAIN_MSG_PER_S = 40_000
PEAK_RSS_MB = 150.0
LIVE_P99_MS = 1000.0
LIVE_RATE = 10_000

TARGETS = {
    "drain_rate": f"drain >= {DRAIN_MSG_PER_S:,} msg/s",
    "drain_lost": "drain: zero lost points",
    "peak_rss": f"ingest peak RSS <= {PEAK_RSS_MB:.0f} MB (all ingest processes)",
    "live_p99": f"live p99 <= {LIVE_P99_MS / 1000:g} s at {LIVE_RATE:,} msg/s",
}


def ingest_peak_rss_mb(drain: dict[str, Any]) -> float | None:
    """Sum over ingest's processes of each one's peak (VmHWM), the larger of the two readings."""
    readings = [drain.get("peak_rss_mb") or {}, drain.get("peak_rss_mb_end") or {}]
    names = set().union(*readings)
    if not names:
        return None
    return round(sum(max(r.get(name, 0.0) for r in readings) for name in names), 1)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    drain = result.get("drain") or {}
    live = result.get("live")
    rate = drain.get("msg_per_s")
    rss = ingest_peak_rss_mb(drain)
    rows = [
        {"id": "drain_rate", "target": TARGETS["drain_rate"], "value": rate,
         "unit": "msg/s", "result": _verdict(None if rate is None else rate >= DRAIN_MSG_PER_S)},
        {"id": "drain_lost", "target": TARGETS["drain_lost"], "value": drain.get("lost"),
         "unit": "points",
         "result": _verdict(None if drain.get("lost") is None else drain["lost"] == 0)},
        {"id": "peak_rss", "target": TARGETS["peak_rss"], "value": rss, "unit": "MB",
         "result": _verdict(None if rss is None else rss <= PEAK_RSS_MB)},
    ]
    if live is None:
        rows.append({"id": "live_p99", "target": TARGETS["live_p99"], "value": None,
                     "unit": "ms", "result": "n/a", "note": "live phase skipped"})
    else:
        p99 = live["latency"]["p99_ms"]
        ok = None if p99 is None else (p99 <= LIVE_P99_MS and live["lost"] == 0)
        row = {"id": "live_p99", "target": TARGETS["live_p99"], "value": p99, "unit": "ms",
               "result": _verdict(ok)}
        notes = []
        if live["lost"]:
            notes.append(f"{live['lost']} live messages never became queryable")
        if live["rate_target"] != LIVE_RATE:
            notes.append(f"measured at {live['rate_target']:,.0f} msg/s, not {LIVE_RATE:,}")
        if live["achieved_rate"] < 0.97 * live["rate_target"]:
            notes.append(f"publisher reached only {live['achieved_rate']:,} msg/s")
        if notes:
            row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def summary_table(result: dict[str, Any]) -> str:
    machine = result["machine"]
    config = result["config"]
    drain = result.get("drain") or {}
    lines = [
        f"kota bench ingest  {machine['date']}  commit {machine['git_commit']}",
        f"machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['memory_mb']:,} MB RAM; Python {machine['python']}; "
        f"{machine['mosquitto']}; InfluxDB {machine['influxd']}",
        f"config: --messages {config['messages']} --rate {config['rate']:g} "
        f"--seconds {config['seconds']:g} --workers {config['workers']}",
        "",
        "backlog drain",
        f"  messages             {_fmt(drain.get('messages'))} "
        f"(broker acked {_fmt(drain.get('published_acked'))} in "
        f"{_fmt(drain.get('publish_s'), 1)} s)",
        f"  stored / lost        {_fmt(drain.get('stored'))} / {_fmt(drain.get('lost'))} "
        f"({drain.get('outcome', '-')}; rejected {_fmt(drain.get('rejected'))}, "
        f"buffered {_fmt(drain.get('buffered'))})",
        f"  time                 {_fmt(drain.get('seconds_from_ready'), 2)} s from ingest "
        f"ready (first log line, before MQTT connect) to all queryable; process start-up "
        f"{_fmt(drain.get('startup_s'), 2)} s; first points at "
        f"{_fmt(drain.get('first_point_s'), 2)} s (poll every "
        f"{drain.get('poll_interval_s', '-')} s)",
        f"  rate                 {_fmt(drain.get('msg_per_s'))} msg/s "
        f"({_fmt(drain.get('msg_per_s_incl_startup'))} incl. startup)",
        f"  ingest peak RSS      {_fmt(ingest_peak_rss_mb(drain), 1)} MB "
        f"{drain.get('peak_rss_mb_end') or drain.get('peak_rss_mb') or ''}",
        f"  CPU seconds          {drain.get('cpu_s', {})}",
    ]
    profile = drain.get("profile")
    if profile and profile.get("samples"):
        lines.append(f"  py-spy, main thread: {profile['samples']:,} samples, "
                     f"{profile['idle_share']:.0%} waiting in epoll, {profile['import_share']:.0%} "
                     "importing; busy samples by self time:")
        lines += [f"    {share:6.1%}  {name}" for name, share in profile["busy_self"][:12]]
    elif profile:
        lines.append(f"  py-spy: {profile.get('error', 'no samples')}")
    live = result.get("live")
    if live:
        latency = live["latency"]
        lines += [
            "",
            "live",
            f"  rate                 {_fmt(live['achieved_rate'])} msg/s achieved of "
            f"{_fmt(live['rate_target'])} for {live['seconds']:g} s "
            f"({_fmt(live['sent'])} sent, {_fmt(live['acked_by_broker'])} acked by broker)",
            f"  stored / lost        {_fmt(live['stored'])} / {_fmt(live['lost'])}",
            f"  latency              p50 {_fmt(latency['p50_ms'])} ms, p90 "
            f"{_fmt(latency['p90_ms'])} ms, p99 {_fmt(latency['p99_ms'])} ms, max "
            f"{_fmt(latency['max_ms'])} ms ({latency['samples']:,} probe samples, "
            f"{latency['polls']} polls, mean query {_fmt(latency['mean_query_ms'], 1)} ms)",
            f"  method               {live['latency_method']}",
            f"  CPU seconds          {live.get('cpu_s', {})}",
        ]
    floors = result.get("floors")
    if floors:
        mqtt_floor, influx_floor = floors["mqtt_bare_subscriber"], floors["influx_only"]
        lines += [
            "",
            "floors (same N)",
            f"  bare paho subscriber {_fmt(mqtt_floor['msg_per_s'])} msg/s "
            f"({_fmt(mqtt_floor['received'])} in {mqtt_floor['seconds']:.2f} s); "
            f"ingest / floor = {_fmt(floors['ingest_vs_mqtt_floor'], 2)}",
            f"  InfluxDB alone       {_fmt(influx_floor['points_per_s'])} points/s "
            f"({_fmt(influx_floor['points'])} in {influx_floor['batch_lines']:,}-line batches, "
            f"{influx_floor['seconds']:.2f} s); ingest / floor = "
            f"{_fmt(floors['ingest_vs_influx_floor'], 2)}",
        ]
    for phase in ("drain", "live"):
        cpu = (result.get(phase) or {}).get("cpu_s") or {}
        if cpu.get("machine_capacity") and cpu["others"] > 0.1 * cpu["machine_capacity"]:
            lines.append(f"WARNING: during the {phase}, processes outside this benchmark used "
                         f"{cpu['others']:.1f} of {cpu['machine_capacity']:.1f} CPU seconds: "
                         "the figures understate this machine")
    lines += ["", f"  {'target':<52} {'measured':>14}  result"]
    for row in result.get("targets", []):
        value = f"{_fmt(row['value'], 1 if row['unit'] == 'MB' else 0)} {row['unit']}"
        lines.append(f"  {row['target']:<52} {value:>14}  {row['result']}"
                     + (f"  ({row['note']})" if row.get("note") else ""))
    return "\n".join(lines)
