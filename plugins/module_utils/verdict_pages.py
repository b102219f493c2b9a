"""The pages of a run's verdict: report.md, and with an A/B the listener's ab.md and ab.html.

Rendering only, pure standard library, shipped with the ``flight_verdict`` module: every figure and every
word of the decision is already in the verdict (``verdict.build_verdict``); the benchmark result adds the
per-utterance rows, the texts, the WAVs and the samples of the histogram. HTML is escaped (``html.escape``)
wherever a value goes into ab.html.
"""

from __future__ import annotations

import html

from ansible_collections.voxtral.deploy.plugins.module_utils.verdict import (
    PHASE_NAMES,
    concurrency_levels,
    fmt,
    ok_samples,
)


def verdict_line(verdict: dict) -> str:
    """One line for people: the verdict and why (the failed phase and its error's first line, else the first reason)."""
    word = verdict["verdict"].upper()
    if verdict["verdict"] == "no-go" and verdict["failed_phase"]:
        return f"{word}: phase {verdict['failed_phase']} failed: {_first_line(verdict['error'])}"
    if verdict["reasons"]:
        return f"{word}: {verdict['reasons'][0]}"
    return word


def _first_line(text: str | None, limit: int = 300) -> str:
    line = (text or "?").strip().splitlines()[0] if (text or "").strip() else "?"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def histogram(values, bins: int = 8, width: int = 40, unit: str = "ms", decimals: int = 1) -> list:
    """A text histogram (equal-width bins between min and max), one line per bin."""
    data = sorted(float(v) for v in values if v is not None)
    if not data:
        return ["(no samples)"]
    low, high = data[0], data[-1]
    if high == low:
        return [f"{low:{decimals + 6}.{decimals}f} {unit} | {'█' * min(width, len(data))} {len(data)}"]
    bins = max(1, min(bins, len(data)))
    step = (high - low) / bins
    counts = [0] * bins
    for value in data:
        counts[min(int((value - low) / step), bins - 1)] += 1
    most = max(counts)
    lines = []
    for index, count in enumerate(counts):
        start, end = low + index * step, low + (index + 1) * step
        blocks = "█" * (round(count / most * width) if count else 0)
        lines.append(f"{start:{decimals + 6}.{decimals}f}–{end:<{decimals + 6}.{decimals}f} {unit} | {blocks} {count}")
    return lines


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_report(verdict: dict, benchmark: dict | None = None) -> str:
    """report.md: the verdict line, a table of the figures, the phases, per-utterance figures, a histogram."""
    vox, impact, build = verdict["voxtral"], verdict["gemma_impact"], verdict["build"]
    out = [
        f"# {verdict['kind'].capitalize()} on {verdict['host']}, run {verdict['run_id']}",
        "",
        f"**{verdict_line(verdict)}**",
        "",
    ]
    if verdict["provisional"]:
        out += ["This verdict was written when the run started and is replaced when it ends.", ""]
    for reason in verdict["reasons"][1:] if verdict["verdict"] != "no-go" else verdict["reasons"]:
        out.append(f"- {_md_cell(_first_line(reason))}")
    if verdict["reasons"]:
        out.append("")
    if build["built"]:
        sha = (build["sha"] or "?")[:12]
        version = f"{build['vllm_omni_version']} ({build['ref']} @ {sha}, profile {build['profile']})"
    else:
        requested = ", ".join(f"{k} {v}" for k, v in sorted(build["requested"].items())) or "the defaults"
        version = f"not built in this run (asked for {requested})"
    baseline_note = ""
    if impact["baseline_p50_ms"] is not None and not impact.get("baseline_from_this_run"):
        baseline_note = f" (recorded {impact.get('baseline_at') or 'earlier'}, not in this run)"
    outage = fmt(impact["outage_duration_minutes"], 2, " min")
    if impact["outage_duration_minutes"] is None and impact.get("paused_now"):
        outage = "ongoing, Gemma is still paused"
    if impact.get("paused_before_this_run"):
        outage += f", paused before this run (at {impact.get('paused_at')})"
    patches = ", ".join(
        f"#{p['pr']} {'applied' if p['applied'] else 'skipped'} ({p['status']})" for p in build["patches"]
    )
    out += [
        "| figure | value |",
        "|---|---|",
        f"| verdict | {verdict['verdict']} |",
        f"| vllm-omni | {_md_cell(version)} |",
        f"| PRs | {_md_cell(patches or 'none')} |",
        f"| Gemma baseline p50 | {fmt(impact['baseline_p50_ms'], 1, ' ms')}{baseline_note} |",
        f"| Gemma post-flight p50 | {fmt(impact['post_flight_p50_ms'], 1, ' ms')} "
        f"(drift {fmt(impact['drift_ratio'], 2, 'x')}, gate passed: {fmt(impact['post_flight_gate_passed'])}) |",
        f"| Gemma outage | {outage} ({impact['user_mode'] or 'n/a'}) |",
        f"| Voxtral time to first audio p50 / p95 | {fmt(vox['ttfa_p50_ms'], 1)} / "
        f"{fmt(vox['ttfa_p95_ms'], 1, ' ms')} |",
        f"| Voxtral RTF p50 | {fmt(vox['rtf_p50'], 3)} |",
        f"| figures from | {vox['source'] or 'n/a'} |",
    ]
    ab = verdict["ab"]
    if ab["configured"]:
        figures = ab["figures"] or {}
        out.append(
            f"| {ab['label']} (A/B) first audio p50 / RTF p50 | {fmt(figures.get('ttfa_p50_ms'), 1, ' ms')} / "
            f"{fmt(figures.get('rtf_p50'), 3)} |"
        )
    out += ["", "## Phases", "", "| phase | seed | status | detail |", "|---|---|---|---|"]
    for name in PHASE_NAMES:
        phase = verdict["phases"][name]
        detail = phase["error"] or phase["note"] or ""
        detail = _md_cell(_first_line(detail)) if detail else ""
        out.append(f"| {name} | {phase['seed_phase']} | {phase['status']} | {detail} |")

    runs = (benchmark or {}).get("runs") or []
    if runs:
        texts = {u["id"]: u for u in (benchmark or {}).get("utterances") or []}
        out += [
            "",
            "## Per utterance (Voxtral, streamed PCM)",
            "",
            "| utterance | length | concurrency | requests | errors | first audio p50 / p95 ms | total p50 ms "
            "| audio s | RTF p50 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            utterance = texts.get(run["utterance"], {})
            out.append(
                f"| {run['utterance']} | {utterance.get('length', '')} | {run['concurrency']} | {run.get('requests')} "
                f"| {int(run.get('requests') or 0) - int(run.get('ok') or 0)} "
                f"| {fmt(run['ttfa_ms'].get('p50'), 1)} / {fmt(run['ttfa_ms'].get('p95'), 1)} "
                f"| {fmt(run['total_ms'].get('p50'), 1)} | {fmt(run['audio_seconds'].get('p50'), 2)} "
                f"| {fmt(run['rtf'].get('p50'), 3)} |"
            )
        levels = concurrency_levels(runs)
        samples = ok_samples(runs, levels[0])
        out += [
            "",
            f"## Time to first audio, concurrency {levels[0]} ({len(samples)} requests)",
            "",
            "```",
            *histogram([s.get("ttfb_ms") for s in samples]),
            "```",
        ]
    if ab["configured"]:
        listen = f"Listen in [{ab['page']}]({ab['page']}); write the verdict into [{ab['sheet']}]({ab['sheet']})."
        out += ["", f"## A/B against {ab['label']}", "", listen]
    out += [
        "",
        f"Verdict JSON: `{verdict['artifacts'].get('verdict', 'verdict.json')}`, written {verdict['timestamp']}.",
    ]
    return "\n".join(out) + "\n"


def _ab_rows(benchmark: dict) -> list:
    """One row per utterance: the text, both WAVs and both sides' figures at the lowest concurrency."""
    voxtral_runs = benchmark.get("runs") or []
    levels = concurrency_levels(voxtral_runs)
    lowest = levels[0] if levels else 1
    ab = benchmark.get("ab") or {}
    ab_runs = {run["utterance"]: run for run in ab.get("runs") or []}
    rows = []
    for utterance in benchmark.get("utterances") or []:
        uid = utterance["id"]
        voxtral = next((r for r in voxtral_runs if r["utterance"] == uid and r["concurrency"] == lowest), None)
        rows.append(
            {
                "utterance": utterance,
                "voxtral": voxtral,
                "other": ab_runs.get(uid),
                "voxtral_wav": (benchmark.get("wavs") or {}).get(uid),
                "other_wav": (ab.get("wavs") or {}).get(uid),
            }
        )
    return rows


def _figures_text(run: dict | None) -> str:
    if not run:
        return "not measured"
    return (
        f"first audio p50 {fmt(run['ttfa_ms'].get('p50'), 1)} ms · total p50 {fmt(run['total_ms'].get('p50'), 1)} ms"
        f" · audio {fmt(run['audio_seconds'].get('p50'), 2)} s · RTF p50 {fmt(run['rtf'].get('p50'), 3)}"
        f" · errors {int(run.get('requests') or 0) - int(run.get('ok') or 0)}/{run.get('requests')}"
    )


def render_ab_markdown(verdict: dict, benchmark: dict) -> str:
    """ab.md: the objective figures side by side and an empty place for the listener's verdict."""
    ab = benchmark.get("ab") or {}
    other = ab.get("label") or "other"
    reference = ab.get("reference") or {}
    endpoint = benchmark.get("endpoint") or {}
    out = [
        f"# A/B: Voxtral against {other} — {verdict['host']}, run {verdict['run_id']}",
        "",
        f"Voxtral: `{endpoint.get('url')}`, voice `{endpoint.get('voice')}`"
        f" ({endpoint.get('voice_kind') or 'preset'}). {other}: `{ab.get('url')}`, reference"
        f" `{reference.get('path') or 'as configured in the service'}`"
        + (f" (sha256 {reference['sha256'][:12]})" if reference.get("sha256") else "")
        + ".",
        "",
        "The figures are measured; the quality is for a listener to judge. Listen in "
        f"[{verdict['ab'].get('page') or 'ab.html'}]({verdict['ab'].get('page') or 'ab.html'}), then fill in the "
        "preferred column (Voxtral / " + other + " / same) and the notes.",
        "",
        f"| utterance | Voxtral | {other} | preferred | notes |",
        "|---|---|---|---|---|",
    ]
    for row in _ab_rows(benchmark):
        uid = row["utterance"]["id"]
        out.append(
            f"| {uid} | {_md_cell(_figures_text(row['voxtral']))} ([wav]({row['voxtral_wav'] or ''})) "
            f"| {_md_cell(_figures_text(row['other']))} ([wav]({row['other_wav'] or ''})) |  |  |"
        )
    out += ["", "## Texts", ""]
    out += [f"- **{u['id']}** ({u.get('length')}): {_md_cell(u['text'])}" for u in benchmark.get("utterances") or []]
    out += ["", "## Listener's verdict", "", "- Listener:", "- Date:"]
    out += [f"- Preferred overall (Voxtral / {other} / same):", "- Notes:", ""]
    return "\n".join(out)


def render_ab_html(verdict: dict, benchmark: dict) -> str:
    """ab.html: audio players side by side with each side's figures, and a form for the listener."""
    ab = benchmark.get("ab") or {}
    other = html.escape(ab.get("label") or "other")
    esc = html.escape

    def player(path):
        if not path:
            return "<em>no audio</em>"
        return f'<audio controls preload="none" src="{esc(path)}"></audio><br><a href="{esc(path)}">{esc(path)}</a>'

    rows = []
    for row in _ab_rows(benchmark):
        utterance = row["utterance"]
        uid = esc(utterance["id"])
        rows.append(
            "<tr>"
            f"<td><strong>{uid}</strong> ({esc(str(utterance.get('length')))})<br><q>{esc(utterance['text'])}</q></td>"
            f"<td>{player(row['voxtral_wav'])}<br><small>{esc(_figures_text(row['voxtral']))}</small></td>"
            f"<td>{player(row['other_wav'])}<br><small>{esc(_figures_text(row['other']))}</small></td>"
            f'<td><label><input type="radio" name="pref-{uid}" value="voxtral"> Voxtral</label><br>'
            f'<label><input type="radio" name="pref-{uid}" value="other"> {other}</label><br>'
            f'<label><input type="radio" name="pref-{uid}" value="same"> same</label><br>'
            f'<textarea name="notes-{uid}" rows="2" cols="24" placeholder="notes"></textarea></td>'
            "</tr>"
        )
    reference = ab.get("reference") or {}
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>A/B: Voxtral against {other} ({esc(verdict["host"])}, {esc(verdict["run_id"])})</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #ccc; padding: 0.5em; vertical-align: top; }}
q {{ font-style: italic; }}
</style>
</head>
<body>
<h1>A/B: Voxtral against {other}</h1>
<p>Host {esc(verdict["host"])}, run {esc(verdict["run_id"])}, verdict <strong>{esc(verdict["verdict"])}</strong>.
Voxtral voice {esc(str((benchmark.get("endpoint") or {}).get("voice")))}; {other} reference
{esc(str(reference.get("path") or "as configured in the service"))}.</p>
<p>The figures are measured (time to first audio, total time, audio seconds, real-time factor); the quality
is for the listener: choose per utterance, then copy the choices into ab.md (this page stores nothing).</p>
<table>
<thead><tr><th>utterance</th><th>Voxtral</th><th>{other}</th><th>listener</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""
