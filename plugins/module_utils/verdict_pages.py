"""The pages of a run's verdict: report.md, and with an A/B the listener's ab.md and ab.html.

Rendering only, pure standard library, shipped with the ``flight_verdict`` module: every figure and every
word of the decision is already in the verdict (``verdict.build_verdict``); the benchmark result adds the
per-utterance rows, the texts, the WAVs and the samples of the histogram; the WAVs' samples (read by the
module) become ab.html's waveforms and spectrograms (``audio_pictures``). HTML is escaped (``html.escape``)
wherever a value goes into ab.html.
"""

from __future__ import annotations

import html

from ansible_collections.voxtral.deploy.plugins.module_utils.audio_pictures import (
    bar_chart_svg,
    spectrogram_img,
    waveform_svg,
)
from ansible_collections.voxtral.deploy.plugins.module_utils.verdict import (
    PHASE_NAMES,
    concurrency_levels,
    fmt,
    limit_figure,
    ok_samples,
)

# How each audio figure reads: (words, decimals, unit).
AUDIO_WORDS = {
    "speech_ratio": ("speech ratio", 2, ""),
    "leading_silence_s": ("leading silence", 2, " s"),
    "trailing_silence_s": ("trailing silence", 2, " s"),
    "clipping_ratio": ("clipping ratio", 4, ""),
    "loudness_lufs": ("loudness", 1, " LUFS"),
    "duration_ratio": ("duration / expected", 2, "×"),
    "model_speech_ratio": ("model VAD speech ratio", 2, ""),
}


def limit_text(limit_name: str, limit) -> str:
    """``min_speech_ratio`` 0.5 -> ``speech ratio ≥ 0.5``."""
    words, _decimals, unit = AUDIO_WORDS.get(limit_figure(limit_name), (limit_figure(limit_name), 2, ""))
    return f"{words} {'≥' if limit_name.startswith('min_') else '≤'} {limit:g}{unit}"


def check_text(check: dict) -> str:
    """One check as people read it: ``✓ speech ratio 0.83 (≥ 0.5)`` or ``✗ ... (worst 0.01, 5 of 5 answers)``."""
    words, decimals, unit = AUDIO_WORDS.get(check["figure"], (check["figure"], 2, ""))
    sign = "≥" if check["check"].startswith("min_") else "≤"
    value = "not measurable" if check["value"] is None else fmt(check["value"], decimals, unit)
    text = f"{'✓' if check['passed'] else '✗'} {words} {value} ({sign} {check['limit']:g}{unit}"
    if not check["passed"]:
        worst = "" if check["worst"] is None else f"worst {fmt(check['worst'], decimals, unit)}, "
        text += f"; {worst}{check['failed_requests']} answers failed"
    return text + ")"


def checks_summary(entry: dict | None) -> str:
    """``✓ 8 of 8 checks`` or the failed checks, for a table cell."""
    if not entry or not entry["requests"]:
        return "not heard"
    failed = [c for c in entry["checks"] if not c["passed"]]
    if not failed:
        return f"✓ {len(entry['checks'])} of {len(entry['checks'])} checks"
    return "; ".join(check_text(c) for c in failed)


def audio_text(entry: dict | None) -> str:
    """What was heard of one utterance, one line: the figures (medians over its answers) and the checks."""
    if not entry or not entry["requests"]:
        return "audio not heard"
    f = entry["figures"]
    parts = [
        f"speech {fmt(f.get('speech_ratio'), 2)}",
        f"silence {fmt(f.get('leading_silence_s'), 2)} / {fmt(f.get('trailing_silence_s'), 2)} s",
        f"clipping {fmt(f.get('clipping_ratio'), 4)}",
        f"{fmt(f.get('loudness_lufs'), 1, ' LUFS')}",
        f"{fmt(f.get('duration_s'), 2)} s of {fmt(f.get('expected_duration_s'), 2)} s expected",
    ]
    if entry.get("speaker_similarity") is not None:
        parts.append(f"similarity to the reference {fmt(entry['speaker_similarity'], 2)}")
    return " · ".join(parts) + f" · {checks_summary(entry)}"


def _audio_systems(verdict: dict) -> dict:
    return {system["label"]: system for system in (verdict.get("audio") or {}).get("systems") or []}


def similarity_text(verdict: dict) -> str:
    similarity = (verdict.get("audio") or {}).get("speaker_similarity") or {}
    if similarity.get("measured"):
        return f"measured with {similarity.get('model')} against {similarity.get('reference')}"
    return similarity.get("reason") or "not measured"


def render_audio_report(verdict: dict) -> list:
    """report.md's audio section: per system and utterance the figures heard and each check's outcome."""
    systems = (verdict.get("audio") or {}).get("systems") or []
    if not systems:
        return []
    out = [
        "",
        "## Audio heard (every answer, the latency gate's audio checks)",
        "",
        "Figures are medians over each utterance's answers (every concurrency level); a check passes when"
        " no answer broke its limit.",
        "",
    ]
    for system in systems:
        if system["checked"]:
            limits = ", ".join(
                limit_text(name, limit)
                for name, limit in system["limits"].items()
                if limit is not None and limit_figure(name) != "model_speech_ratio"
            )
            out.append(f"- {system['label']}: {system['failed_requests']} of {system['requests']} answers failed a"
                       f" check; limits: {limits}.")  # fmt: skip
        else:
            out.append(f"- {system['label']}: not heard (audio checks off, or no answer to hear).")
    out += [
        f"- Speaker similarity to the reference voice: {similarity_text(verdict)}.",
        "",
        "| system | utterance | answers | speech ratio | silence lead / trail s | clipping ratio | loudness LUFS "
        "| duration s / expected | similarity | checks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for system in systems:
        for uid, entry in system["utterances"].items():
            f = entry["figures"]
            out.append(
                f"| {_md_cell(system['label'])} | {_md_cell(uid)} | {entry['requests']} "
                f"| {fmt(f.get('speech_ratio'), 2)} "
                f"| {fmt(f.get('leading_silence_s'), 2)} / {fmt(f.get('trailing_silence_s'), 2)} "
                f"| {fmt(f.get('clipping_ratio'), 4)} | {fmt(f.get('loudness_lufs'), 1)} "
                f"| {fmt(f.get('duration_s'), 2)} / {fmt(f.get('expected_duration_s'), 2)}"
                f" ({fmt(f.get('duration_ratio'), 2, '×')}) "
                f"| {fmt(entry.get('speaker_similarity'), 2)} | {_md_cell(checks_summary(entry))} |"
            )
    return out


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
    for system in (verdict.get("audio") or {}).get("systems") or []:
        if system["checked"]:
            heard = (
                f"{system['requests'] - system['failed_requests']} of {system['requests']} answers passed every check"
            )
        else:
            heard = "not heard"
        out.append(f"| {_md_cell(system['label'])} audio | {heard} |")
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
    out += render_audio_report(verdict)
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


def _labels(benchmark: dict) -> tuple[str, str]:
    return (benchmark.get("endpoint") or {}).get("label") or "voxtral", (benchmark.get("ab") or {}).get(
        "label"
    ) or "other"


def render_ab_markdown(verdict: dict, benchmark: dict) -> str:
    """ab.md: the objective figures side by side and an empty place for the listener's verdict."""
    ab = benchmark.get("ab") or {}
    mine, other = _labels(benchmark)
    heard = _audio_systems(verdict)
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
        f"Audio: medians over each utterance's answers, each check against its limit. Speaker similarity to the"
        f" reference: {similarity_text(verdict)}.",
        "",
        f"| utterance | Voxtral | {other} | preferred | notes |",
        "|---|---|---|---|---|",
    ]
    for row in _ab_rows(benchmark):
        uid = row["utterance"]["id"]
        mine_audio = ((heard.get(mine) or {}).get("utterances") or {}).get(uid)
        other_audio = ((heard.get(other) or {}).get("utterances") or {}).get(uid)
        out.append(
            f"| {uid} | {_md_cell(_figures_text(row['voxtral']))}; {_md_cell(audio_text(mine_audio))}"
            f" ([wav]({row['voxtral_wav'] or ''})) "
            f"| {_md_cell(_figures_text(row['other']))}; {_md_cell(audio_text(other_audio))}"
            f" ([wav]({row['other_wav'] or ''})) |  |  |"
        )
    out += ["", "## Texts", ""]
    out += [f"- **{u['id']}** ({u.get('length')}): {_md_cell(u['text'])}" for u in benchmark.get("utterances") or []]
    out += ["", "## Listener's verdict", "", "- Listener:", "- Date:"]
    out += [f"- Preferred overall (Voxtral / {other} / same):", "- Notes:", ""]
    return "\n".join(out)


def _pictures(path: str | None, audio_files: dict, label: str) -> str:
    """The waveform and the spectrogram of one WAV of the artifacts, or why there is none."""
    if not path:
        return ""
    audio = audio_files.get(path)
    if audio is None:
        return '<p class="nopicture"><small>no picture: the WAV is not in the artifacts</small></p>'
    if isinstance(audio, str):
        return f'<p class="nopicture"><small>no picture: {html.escape(audio)}</small></p>'
    samples, rate = audio
    return (
        f'<div class="pictures">{waveform_svg(samples, rate, f"waveform of {label}")}'
        f"{spectrogram_img(samples, rate, f'spectrogram of {label}')}</div>"
    )


def _audio_list(entry: dict | None) -> str:
    """What was heard of one utterance as an HTML list: the figures and each check, ✓ or ✗."""
    esc = html.escape
    if not entry or not entry["requests"]:
        return '<p class="audio"><small>audio not heard</small></p>'
    items = [f'<li class="{"pass" if c["passed"] else "fail"}">{esc(check_text(c))}</li>' for c in entry["checks"]]
    figures = entry["figures"]
    items.append(
        f"<li>duration {esc(fmt(figures.get('duration_s'), 2, ' s'))} of"
        f" {esc(fmt(figures.get('expected_duration_s'), 2, ' s'))} expected, peak"
        f" {esc(fmt(figures.get('peak_dbfs'), 1, ' dBFS'))}, {entry['requests']} answers heard</li>"
    )
    if entry.get("speaker_similarity") is not None:
        items.append(f"<li>similarity to the reference {esc(fmt(entry['speaker_similarity'], 2))}</li>")
    return f'<ul class="audio">{"".join(items)}</ul>'


def _charts(verdict: dict, benchmark: dict) -> str:
    """TTFA p50 and RTF p50 per system (bars) and concurrency level (groups), as inline SVG."""
    mine, other = _labels(benchmark)
    per_system = {mine: verdict["voxtral"].get("per_concurrency") or {}}
    if verdict["ab"]["configured"]:
        per_system[other] = verdict["ab"].get("per_concurrency") or {}
    levels = sorted({int(level) for figures in per_system.values() for level in figures})

    def groups(key):
        return [
            (
                f"concurrency {level}",
                [
                    (name, ((figures.get(str(level)) or {}).get(key) or {}).get("p50"))
                    for name, figures in per_system.items()
                ],
            )
            for level in levels
        ]

    return bar_chart_svg("Time to first audio p50 (ms)", groups("ttfa_ms"), " ms", 1) + bar_chart_svg(
        "Real-time factor p50 (lower is faster)", groups("rtf"), "", 3
    )


def render_ab_html(verdict: dict, benchmark: dict, audio_files: dict | None = None) -> str:
    """ab.html: per utterance both sides' players, waveforms, spectrograms, timing and audio figures, a chart
    of TTFA and RTF per system and concurrency, and a form for the listener. One self-contained file (the
    pictures inline; the players point at the WAVs beside it).

    ``audio_files`` is ``{artifact path: (samples, rate) or why it could not be read}`` for the WAVs.
    """
    audio_files = audio_files or {}
    ab = benchmark.get("ab") or {}
    mine, other_label = _labels(benchmark)
    heard = _audio_systems(verdict)
    other = html.escape(other_label)
    esc = html.escape

    def player(path):
        if not path:
            return "<em>no audio kept</em><br>"
        return f'<audio controls preload="none" src="{esc(path)}"></audio><br><a href="{esc(path)}">{esc(path)}</a>'

    def side(path, run, label, uid):
        entry = ((heard.get(label) or {}).get("utterances") or {}).get(uid)
        return (
            f"<td>{player(path)}{_pictures(path, audio_files, f'{label} {uid}')}"
            f"<small>{esc(_figures_text(run))}</small>{_audio_list(entry)}</td>"
        )

    rows = []
    for row in _ab_rows(benchmark):
        utterance = row["utterance"]
        uid = esc(utterance["id"])
        rows.append(
            "<tr>"
            f"<td><strong>{uid}</strong> ({esc(str(utterance.get('length')))})<br><q>{esc(utterance['text'])}</q></td>"
            + side(row["voxtral_wav"], row["voxtral"], mine, utterance["id"])
            + side(row["other_wav"], row["other"], other_label, utterance["id"])
            + f'<td><label><input type="radio" name="pref-{uid}" value="voxtral"> Voxtral</label><br>'
            f'<label><input type="radio" name="pref-{uid}" value="other"> {other}</label><br>'
            f'<label><input type="radio" name="pref-{uid}" value="same"> same</label><br>'
            f'<textarea name="notes-{uid}" rows="2" cols="24" placeholder="notes"></textarea></td>'
            "</tr>"
        )
    reference = ab.get("reference") or {}
    reference_block = ""
    if reference.get("wav"):
        reference_block = (
            f'<div class="reference"><h2>Reference voice</h2>{player(reference["wav"])}'
            f"{_pictures(reference['wav'], audio_files, 'the reference')}</div>"
        )
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
.pictures svg, .pictures img {{ display: block; margin: 0.3em 0; }}
.charts svg {{ margin-right: 2em; }}
ul.audio {{ margin: 0.3em 0; padding-left: 1.2em; font-size: small; }}
li.pass {{ color: #276749; }}
li.fail {{ color: #c53030; font-weight: bold; }}
</style>
</head>
<body>
<h1>A/B: Voxtral against {other}</h1>
<p>Host {esc(verdict["host"])}, run {esc(verdict["run_id"])}, verdict <strong>{esc(verdict["verdict"])}</strong>.
Voxtral voice {esc(str((benchmark.get("endpoint") or {}).get("voice")))}; {other} reference
{esc(str(reference.get("path") or "as configured in the service"))}.</p>
<p>The figures are measured (time to first audio, total time, audio seconds, real-time factor; what the
gate heard: speech ratio, leading and trailing silence, clipping, loudness, duration against the text, each
against its limit); the quality is for the listener: choose per utterance, then copy the choices into ab.md
(this page stores nothing). Speaker similarity to the reference: {esc(similarity_text(verdict))}.</p>
<div class="charts">{_charts(verdict, benchmark)}</div>
{reference_block}
<table>
<thead><tr><th>utterance</th><th>Voxtral</th><th>{other}</th><th>listener</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""
