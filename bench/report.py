"""The benchmark's tables (rich) and its JSON file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["TARGETS", "print_report", "write_json"]

#: what the figures are reported against (not assertions)
TARGETS = {
    "sensevoice_full_p95_final_latency_s": 1.5,
    "concurrent_streams_under_2s_p95": 2,
    "pipeline_overhead_ratio": 0.10,
    "rss_growth_hour1_to_3_pct": 5.0,
    "batched_vs_one_at_a_time": 1.3,
    "whisper_wer_vs_whole_file": 1.1,
    "whisper_final_latency_p50_s": 0.9,
    "whisper_final_latency_p95_s": 1.3,
    "whisper_visible_latency_p95_s": 1.0,
    "whisper_worker_cores": 1.0,
    "sensevoice_int8_final_latency_p50_s": 0.6,
    "whisper_visible_latency_p50_s": 0.6,
    "fluent_final_latency_p50_s": 2.0,
    "fluent_final_latency_p95_s": 3.5,
    "fluent_visible_latency_p50_s": 0.7,
    "fluent_visible_latency_p95_s": 1.2,
    "fluent_wer_vs_whole_file": 1.1,
}


def _f(value, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" [green]ok[/]" if ok else " [red]miss[/]")


def _latency_table(engines: dict) -> Table:
    t = Table(title="1. Pipeline latency, one real-time stream (seconds)")
    for col in ("engine", "utts", "final p50", "final p95", "final max", "1st partial p50",
                "partial every (mean/p50)", "worker cores", "others' cores"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for key, r in engines.items():
        lat = r.get("latency")
        if not lat:
            continue
        fl, fp, pi = lat["final_latency_s"], lat["first_partial_s"], lat["partial_interval_s"]
        ok = fl["p95"] <= TARGETS["sensevoice_full_p95_final_latency_s"] if key.startswith(
            "sensevoice-full") and fl["p95"] is not None else None
        t.add_row(key, str(lat["utterances"]), _f(fl["p50"]), _f(fl["p95"]) + _mark(ok),
                  _f(fl["max"]), _f(fp["p50"]), f"{_f(pi['mean'])} / {_f(pi['p50'])}",
                  _f(lat["worker"]["cores"]), _f(lat["worker"].get("others_cores")))
    return t


def _accuracy_table(engines: dict) -> Table:
    t = Table(title="1b. What a reader sees, one real-time stream: text and when the sentence's end shows")
    for col in ("engine", "streamed WER", "whole file beam 5", "ratio", "final p50 / p95",
                "visible p50 / p95", "worker cores"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for key, r in engines.items():
        lat = r.get("latency")
        if not lat:
            continue
        fl, vis = lat["final_latency_s"], lat.get("visible_latency_s") or {}
        whisper = key.startswith("whisper")
        ratio = r.get("wer_ratio")
        marks = {
            "ratio": _mark(ratio <= TARGETS["whisper_wer_vs_whole_file"]) if ratio is not None else "",
            "p50": _mark(fl["p50"] <= TARGETS["whisper_final_latency_p50_s"]) if whisper and fl["p50"] else "",
            "p95": _mark(fl["p95"] <= TARGETS["whisper_final_latency_p95_s"]) if whisper and fl["p95"] else "",
            "vis": _mark(vis["p95"] <= TARGETS["whisper_visible_latency_p95_s"])
            if whisper and vis.get("p95") is not None else "",
            "vis50": _mark(vis["p50"] <= TARGETS["whisper_visible_latency_p50_s"])
            if whisper and vis.get("p50") is not None else "",
            "cores": _mark(lat["worker"]["cores"] <= TARGETS["whisper_worker_cores"]) if whisper else "",
        }
        if key == "sensevoice-full-int8" and fl["p50"] is not None:
            marks["p50"] = _mark(fl["p50"] <= TARGETS["sensevoice_int8_final_latency_p50_s"])
        t.add_row(key, _f(lat.get("streamed_wer"), 3), _f((r.get("offline_wer") or {}).get("wer"), 3),
                  _f(ratio) + marks["ratio"],
                  f"{_f(fl['p50'])}{marks['p50']} / {_f(fl['p95'])}{marks['p95']}",
                  f"{_f(vis.get('p50'))}{marks['vis50']} / {_f(vis.get('p95'))}{marks['vis']}",
                  _f(lat["worker"]["cores"]) + marks["cores"])
    return t


def _fluent_table(engines: dict) -> Table:
    t = Table(title="8. Fluent lecture (sentences 0.2-0.35 s apart), per sentence; "
                    "more streams: a new voice per sentence")
    for col in ("engine", "streams", "final p50 / p95", "visible p50 / p95", "finals a sentence",
                "committed", "lost", "streamed WER", "whole file", "worker cores"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for key, r in engines.items():
        for name, lv in (r.get("fluent") or {}).items():
            fl, vis = lv["final_latency_s"], lv["visible_latency_s"]
            one = name == "1" and key.startswith("whisper")
            marks = {k: _mark(v <= TARGETS[f"fluent_{k}"]) if one and v is not None else "" for k, v in (
                ("final_latency_p50_s", fl["p50"]), ("final_latency_p95_s", fl["p95"]),
                ("visible_latency_p50_s", vis["p50"]), ("visible_latency_p95_s", vis["p95"]))}
            ratio = r.get("fluent_wer_ratio") if name == "1" else None
            whole = (r.get("fluent_offline_wer") or {}).get("wer") if name == "1" else None
            wer_cell = _f(lv.get("streamed_wer"), 3)
            if ratio is not None:
                wer_cell += f" ({_f(ratio)}x{_mark(ratio <= TARGETS['fluent_wer_vs_whole_file'])})"
            t.add_row(key, name,
                      f"{_f(fl['p50'])}{marks['final_latency_p50_s']} / {_f(fl['p95'])}{marks['final_latency_p95_s']}",
                      f"{_f(vis['p50'])}{marks['visible_latency_p50_s']} / "
                      f"{_f(vis['p95'])}{marks['visible_latency_p95_s']}",
                      _f(lv["finals_per_sentence"]), str(lv.get("committed_sentences", "-")),
                      str(lv["lost_sentences"]), wer_cell, _f(whole, 3),
                      _f(lv["worker"]["cores"]))
    return t


def _engine_table(engines: dict) -> Table:
    t = Table(title="2. Engine alone (same utterances) and pipeline overhead at one stream")
    for col in ("engine", "engine s p50", "engine s max", "RTF p50", "overhead s p50",
                "overhead / engine (median)", "(sum)"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for key, r in engines.items():
        eng, over = r.get("engine"), r.get("overhead") or {}
        if not eng:
            continue
        median, ratio = over.get("ratio_median"), over.get("ratio")
        ok = None if median is None else median <= TARGETS["pipeline_overhead_ratio"]
        t.add_row(key, _f(eng["engine_s"]["p50"], 3), _f(eng["engine_s"]["max"], 3),
                  _f(eng.get("rtf_p50"), 3), _f((over.get("overhead_s") or {}).get("p50"), 3),
                  _f(None if median is None else median * 100, 0, " %") + _mark(ok),
                  _f(None if ratio is None else ratio * 100, 0, " %"))
    return t


def _concurrency_table(engines: dict) -> Table:
    t = Table(title="3. Concurrent real-time streams: p95 final latency per count (limit 2 s)")
    t.add_column("engine")
    t.add_column("streams: p95 s (worker cores, others' cores)")
    t.add_column("most streams under 2 s", justify="right")
    for key, r in engines.items():
        conc = r.get("concurrency")
        if not conc:
            continue
        cells = [f"{lv['streams']}: {_f(lv['final_latency_s']['p95'])} ({_f(lv['worker']['cores'])}, "
                 f"{_f(lv['worker'].get('others_cores'))})" for lv in conc["levels"]]
        best = conc.get("max_streams")
        ok = None if best is None else best >= TARGETS["concurrent_streams_under_2s_p95"]
        note = f" ({conc['note']})" if conc.get("note") else ""
        more = ""
        if conc.get("skipped_from"):  # a lower bound: the next level was not tried
            more = f"+ ({conc['skipped_from']} not run: time budget)"
            ok = True if ok else None
        t.add_row(key, ", ".join(cells) + note, f"{best}{more}{_mark(ok)}")
    return t


def _batching_table(engines: dict) -> Table:
    t = Table(title="4. Batched (max_batch 16, calibrated policy) vs one at a time (max_batch 1), "
                    "4 streams as fast as possible")
    for col in ("engine", "one-at-a-time audio s/s", "batched audio s/s", "ratio", "largest batch",
                "calibration gain / call cost model"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for key, r in engines.items():
        b = r.get("batching")
        if not b:
            continue
        ok = b["ratio"] >= TARGETS["batched_vs_one_at_a_time"]
        t.add_row(key, _f(b["one_at_a_time"]["audio_s_per_s"]), _f(b["batched"]["audio_s_per_s"]),
                  _f(b["ratio"]) + "x" + _mark(ok), str(b["batched"]["largest_batch"]),
                  _calibration(b.get("calibration")))
    return t


def _calibration(c: dict | None) -> str:
    if not c:
        return "-"
    if c["max_batch"] <= 1:
        return f"{_f(c['gain'])}x / batching off"
    return f"{_f(c['gain'])}x / {_f(c['call_overhead_s'], 3)} s + {_f(c['per_audio_second_s'], 3)} s per s"


def _no_partials_table(engines: dict) -> Table:
    t = Table(title="7. What partials cost the finals: one stream, partials on vs off")
    for col in ("engine", "final p50 on / off", "final p95 on / off", "overhead / engine on / off"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for key, r in engines.items():
        off = r.get("latency_no_partials")
        if not off or not r.get("latency"):
            continue
        on_l, off_l = r["latency"]["final_latency_s"], off["final_latency_s"]
        on_o, off_o = (r.get("overhead") or {}).get("ratio"), (r.get("overhead_no_partials") or {}).get("ratio")
        pct = [None if x is None else x * 100 for x in (on_o, off_o)]
        t.add_row(key, f"{_f(on_l['p50'])} / {_f(off_l['p50'])}", f"{_f(on_l['p95'])} / {_f(off_l['p95'])}",
                  f"{_f(pct[0], 0, ' %')} / {_f(pct[1], 0, ' %')}")
    return t


def _memory_table(memory: dict) -> Table:
    t = Table(title="5. Worker memory over an accelerated long lecture")
    for col in ("engine", "audio", "wall s", "x real time", "RSS at marks MB", "growth first->last",
                "growth last mark", "worker cores"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for key, m in memory.items():
        unit = f"{m['mark_s'] / 3600:g} h" if m["mark_s"] >= 3600 else f"{m['mark_s'] / 60:g} min"
        growth = m["growth_first_to_last_pct"]
        ok = None if growth is None else abs(growth) < TARGETS["rss_growth_hour1_to_3_pct"]
        t.add_row(key, f"{m['audio_s'] / 3600:.2f} h ({m['marks']} marks of {unit})", _f(m["wall_s"], 1),
                  _f(m["speedup_x_realtime"], 0), " / ".join(_f(x, 1) for x in m["rss_at_marks_mb"]),
                  f"{_f(growth, 2, ' %')} ({_f(m.get('growth_first_to_last_mb'), 1, ' MB')}){_mark(ok)}",
                  _f(m.get("growth_last_mark_pct"), 2, " %"), _f(m["worker_cores"]))
    return t


def print_report(report: dict, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    engines = report.get("engines", {})
    for make in (_latency_table, _accuracy_table, _fluent_table, _engine_table, _concurrency_table,
                 _batching_table):
        table = make(engines)
        if table.row_count:
            console.print(table)
    for key, r in engines.items():
        if r.get("error"):
            console.print(f"[red]{key} failed:[/] {r['error']}")
    if report.get("memory"):
        console.print(_memory_table(report["memory"]))
    table = _no_partials_table(engines)
    if table.row_count:
        console.print(table)
    console.print(f"GPU: {report['gpu']['line']}")
    meta = report["meta"]
    console.print(f"machine: {meta['machine']}; load average at start {meta['loadavg_start']}, "
                  f"at end {meta['loadavg_end']} (CPUs shared: timings are noisy)")
    console.print(f"total runtime {meta['runtime_s']:.0f} s; JSON: {meta['json']}")


def write_json(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
