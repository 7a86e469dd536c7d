"""A run's results as one folder to hand on: ``report/index.html`` (``medadv report RUN``; written at the end of every
run and every sweep).

The page holds the run's profile and provenance (``config.json``, ``manifest.json``), the verdicts a reader must see
before any number (whether the reference classifier learned, from notebook 01's ``summary.json`` entry; the gradient
masking checks of ``tables/attack_sanity.csv`` where the run has them), the declared effects with their 95% intervals
(``tables/effects.csv``), and then, notebook by notebook, every figure with its caption and every table, each under
the heading and first paragraph of the notebook section that made it. Each executed notebook is rendered to HTML by
nbconvert (its figures are already embedded in it) into ``report/notebooks/`` and linked from the index. A sweep's
folder gets the same page over its seeds: its runs and their status, notebook 90's tables and forest plot, and a link
to each seed's own report.

The folder is self-contained: figures (PNG) and tables (CSV) are copied into it, every link is relative, and nothing is
loaded from the network (nbconvert's MathJax and require.js script tags, the only remote loads of its template, are
removed; a notebook's LaTeX then shows as its source). It is laid out for a phone as well as a desktop (one column,
images scaled to the screen's width, wide tables scrolled inside their box).

Cost at the end of a run: one nbconvert export per executed notebook (7 for a run, 1 for a sweep), one read of each
table and a copy of each PNG and CSV; no notebook is executed again and no network is run.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd

from medadv.console import console_logger
from medadv.core import first_names, read_json
from medadv.errors import MedadvError, RunError
from medadv.layout import MANIFEST_FILE, SWEEP_FILE, RunLayout
from medadv.report import INTENDED_USE, SMOKE_PROFILE, broken_outputs, other_writer
from medadv.style import format_table

LOG = logging.getLogger(__name__)
SANITY_TABLE = "attack_sanity"
#: Rows of a table shown on the page; a longer table shows its first rows and links its whole CSV.
ROW_LIMIT = 60
#: Remote scripts of nbconvert's HTML template (MathJax, require.js, the widget manager): removed, the page is offline.
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\ssrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.IGNORECASE)
CSS = """
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; padding: 0.75rem;
       max-width: 60rem; color: #1a1a1a; background: #fff; overflow-wrap: anywhere; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ccc; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-top: 1.5rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .caption { font-size: 0.9rem; color: #333; }
.table-box { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.4rem; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.banner { border-left: 6px solid #b00020; background: #fdecee; padding: 0.5rem 0.75rem; margin: 1rem 0; }
.ok { border-left: 6px solid #1b5e20; background: #edf7ee; padding: 0.5rem 0.75rem; margin: 1rem 0; }
nav a { margin-right: 0.75rem; } .effects li { margin-bottom: 0.5rem; } details { margin: 0.5rem 0; }
code { font-size: 0.9em; }
"""


@dataclass(frozen=True)
class Output:
    """One figure or table of the run: where it is and the notebook section it belongs to."""

    kind: str
    name: str
    notebook: str
    cell: int
    caption: str


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _markdown(text: str) -> str:
    """Markdown of a notebook cell as HTML (nbconvert's renderer, as the notebook pages use)."""
    from nbconvert.filters.markdown import markdown2html_mistune

    return markdown2html_mistune(text)


def _sections(notebook: Path) -> list[tuple[int, str, str]]:
    """(cell index, code, caption Markdown) of each code cell of ``notebook``: the caption is the heading and the
    first paragraph of the nearest Markdown cell above it."""
    cells = nbformat.read(notebook, as_version=4).cells
    out, caption = [], ""
    for index, cell in enumerate(cells):
        if cell.cell_type == "markdown":
            paragraphs = [p.strip() for p in cell.source.split("\n\n") if p.strip()]
            head = [p.lstrip("#").strip().rstrip(".") + "." for p in paragraphs if p.startswith("#")][:1]
            body = [p for p in paragraphs if not p.startswith("#")][:1]
            caption = " ".join([f"**{h}**" for h in head] + body)
        elif cell.cell_type == "code":
            out.append((index, cell.source, caption))
    return out


def _locate(name: str, kind: str, sections: list[tuple[int, str, str]]) -> tuple[int, str]:
    """The code cell that saves the ``kind`` (figure or table) ``name``: the one quoting the name, else the one quoting
    the longest prefix of it (``attack_examples_`` for ``attack_examples_pgd``, saved in a loop); a figure whose name
    the notebook does not write (a stage function names it) belongs to the section that saves the table of its name.

    Returns:
        (cell index, caption Markdown); (a large index, "") when no cell names it.
    """
    prefixes = [name] + [name[: i + 1] for i in range(len(name) - 1, 0, -1) if name[i] == "_"]
    for saver in (kind, "table" if kind == "figure" else "figure"):
        for prefix in prefixes:
            end = ('"', "'") if prefix == name else ("",)
            for index, code, caption in sections:
                if f"save_{saver}" in code and any(f"{q}{prefix}{e}" in code for q in ('"', "'") for e in end):
                    return index, caption
    return 10**6, ""


def collect_outputs(folder: Path) -> dict[str, list[Output]]:
    """Every figure (PNG) and table (CSV) of the run folder, grouped by the notebook that registered it
    (``manifest.json``) in the order that notebook shows them, each with its caption.

    Returns:
        ``{notebook stem: [Output, ...]}``; outputs no notebook registered are under ``"other"``.
    """
    registered = read_json(RunLayout(folder).manifest, default={}).get("outputs", {})
    found = [("figure", p) for p in sorted(RunLayout(folder).figures.glob("*.png"))] + [
        ("table", p) for p in sorted(RunLayout(folder).tables.glob("*.csv"))
    ]
    sections: dict[str, list[tuple[int, str, str]]] = {}
    grouped: dict[str, list[Output]] = {}
    for kind, path in found:
        notebook = registered.get(path.relative_to(folder).as_posix(), {}).get("notebook", "other")
        executed = RunLayout(folder).notebooks / f"{notebook}.ipynb"
        if notebook not in sections:
            sections[notebook] = _sections(executed) if executed.is_file() else []
        cell, caption = _locate(path.stem, kind, sections[notebook])
        grouped.setdefault(notebook, []).append(Output(kind, path.stem, notebook, cell, caption))
    return {nb: sorted(items, key=lambda o: (o.cell, o.kind != "figure", o.name)) for nb, items in grouped.items()}


def render_notebook(notebook: Path, target: Path) -> None:
    """Write the executed ``notebook`` as an HTML page at ``target`` (nbconvert's ``lab`` template, its figures
    embedded), without its remote scripts and with a link back to the report's index."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(notebook, as_version=4))
    body = _REMOTE_SCRIPT.sub("", body)
    back = (
        '<nav style="font:16px system-ui,sans-serif;padding:0.5rem"><a href="../index.html">&larr; the run\'s '
        f"report</a> &middot; {_esc(notebook.name)}</nav>"
    )
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + back, body, count=1)
    target.write_text(body, encoding="utf-8")


def table_html(path: Path, link: str, limit: int = ROW_LIMIT) -> str:
    """A CSV table as an HTML table for the page (:func:`medadv.style.format_table`'s digits), its first ``limit``
    rows when it is longer, with a link to the whole file.

    Returns:
        The HTML (a note instead of a table for an empty or unreadable file).
    """
    try:
        table = pd.read_csv(path, keep_default_na=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        return f"<p class=caption>{_esc(path.name)} could not be read as a table ({_esc(exc)}).</p>"
    shown = format_table(table.head(limit))
    note = (
        f"first {limit} of {len(table)} rows; " if len(table) > limit else f"{len(table)} rows; "
    ) + f'<a href="{_esc(link)}">the whole table (CSV)</a>'
    return (
        f'<div class="table-box">{shown.to_html(index=False, border=0, escape=True)}</div><p class=caption>{note}</p>'
    )


def _figure(folder: Path, out: Path, item: Output) -> str:
    shutil.copy2(RunLayout(folder).figures / f"{item.name}.png", RunLayout(out).figures / f"{item.name}.png")
    caption = _markdown(item.caption) if item.caption else ""
    return (
        f'<figure id="figure-{_esc(item.name)}"><a href="figures/{_esc(item.name)}.png"><img loading="lazy" '
        f'src="figures/{_esc(item.name)}.png" alt="figure {_esc(item.name)}"></a><figcaption><b>Figure '
        f"<code>{_esc(item.name)}</code>.</b> {caption}</figcaption></figure>"
    )


def _table(folder: Path, out: Path, item: Output) -> str:
    shutil.copy2(RunLayout(folder).tables / f"{item.name}.csv", RunLayout(out).tables / f"{item.name}.csv")
    caption = _markdown(item.caption) if item.caption else ""
    return (
        f'<section id="table-{_esc(item.name)}"><h4>Table <code>{_esc(item.name)}</code></h4>'
        f'<div class="caption">{caption}</div>'
        f"{table_html(RunLayout(folder).tables / f'{item.name}.csv', f'tables/{item.name}.csv')}"
        "</section>"
    )


def competence_html(summary: dict[str, Any]) -> str:
    """Whether the run's reference classifier has learned, as notebook 01 recorded it in ``summary.json``.

    Returns:
        A banner (not competent), a confirmation (competent), or a note that notebook 01 has not recorded it.
    """
    found = summary.get("01_classifier_training", {}).get("competence")
    if not found:
        return "<p>Notebook 01 has not recorded the reference classifier's competence in this run.</p>"
    gate = "no gate" if found.get("min_val_auc") is None else f"gate {found['min_val_auc']:g}"
    facts = (
        f"best validation AUC {found['val_auc']:.3f} ({gate}; passes: {'yes' if found['passes_gate'] else 'no'}), "
        f"degenerate (more than 95% of the test images one class): {'yes' if found['degenerate'] else 'no'}"
    )
    if found.get("competent"):
        return f'<p class="ok">The reference classifier <code>{_esc(found["model"])}</code> has learned: {facts}.</p>'
    return (
        f'<p class="banner"><b>The reference classifier <code>{_esc(found["model"])}</code> has not learned enough '
        f"to be studied</b>: {facts}. Every number below is measured on it, but says little about a working "
        "classifier; <code>effects.csv</code> marks the effects that read it as not interpretable.</p>"
    )


def masking_html(path: Path) -> str:
    """The gradient-masking verdict of ``tables/attack_sanity.csv`` (model, check, value, passes, meaning), per model.

    Returns:
        HTML: for each model, no sign of masking or the checks it failed with their meaning; a note without the table.
    """
    if not path.is_file():
        return (
            "<p>This run has no gradient-masking checks (<code>tables/attack_sanity.csv</code>, written by "
            "notebook 03 where the kit has them).</p>"
        )
    table = pd.read_csv(path)
    missing = {"model", "check", "passes"} - set(table.columns)
    if missing:
        return f"<p class=banner>{_esc(path.name)} lacks the columns {sorted(missing)}; its verdict cannot be read.</p>"
    lines = []
    for model, rows in table.groupby("model", sort=True):
        passes = rows["passes"].astype(str).str.lower().isin(["true", "1", "yes"])
        failed = rows[~passes]
        if failed.empty:
            lines.append(
                f'<li class="ok"><code>{_esc(model)}</code>: every check passed ({len(rows)}); no sign of '
                "gradient masking.</li>"
            )
            continue
        why = "; ".join(
            f"{_esc(r['check'])}" + (f" ({_esc(r['meaning'])})" if "meaning" in rows and pd.notna(r["meaning"]) else "")
            for _, r in failed.iterrows()
        )
        lines.append(f'<li class="banner"><code>{_esc(model)}</code>: gradient masking suspected; failed: {why}.</li>')
    return "<ul>" + "".join(lines) + "</ul>"


def effects_html(folder: Path, config: dict[str, Any]) -> str:
    """The declared effects (``tables/effects.csv``) with their claims, values and 95% intervals.

    Returns:
        The HTML table, or a note when the run has not written them.
    """
    path = RunLayout(folder).tables / "effects.csv"
    if not path.is_file():
        return "<p>This run has not written its declared effects (<code>tables/effects.csv</code>, notebook 04).</p>"
    effects = pd.read_csv(path, dtype={"paper": str}, keep_default_na=False, na_values=[""])
    claims = config.get("profile", {}).get("effects", {})
    items = []
    for _, row in format_table(effects).iterrows():
        holds = {"yes": "holds", "no": "does not hold"}.get(row["holds"], "not evaluated")  # NA: see its note
        trust = "" if row["interpretable"] == "yes" else f"; <b>not interpretable</b> ({_esc(row['competence'])})"
        paper = f"; paper {_esc(row['paper'])}" + (f": {_esc(row['paper_value'])}" if row["paper_value"] else "")
        items.append(
            f"<li><code>{_esc(row['effect'])}</code>: {_esc(claims.get(row['effect'], {}).get('claim', ''))}. "
            f"<b>{_esc(row['value'])}</b> (95% CI {_esc(row['ci_low'])} to {_esc(row['ci_high'])}; "
            f"{_esc(row['ci_method'])}), expected {_esc(row['expected'])}: <b>{holds}</b>{trust}{paper}"
            + (f". {_esc(row['note'])}" if row.get("note") else "")
            + "</li>"
        )
    return (
        f"<ul class=effects>{''.join(items)}</ul><p class=caption>The whole table: "
        '<a href="#table-effects">effects</a>.</p>'
    )


def data_set_words(data: dict[str, Any]) -> str:
    """The data set of a run in words: the manifest and its folder, or the phantom cohort with its modality and size.

    Returns:
        The words.
    """
    if data.get("manifest"):
        return f"{data['manifest']} in {data.get('root')}"
    return f"the phantom cohort ({data.get('modality', '?')}, {data.get('n_patients', '?')} patients)"


def _status_words(entry: dict[str, Any], writing: bool) -> str:
    """A notebook's status in the provenance table: ``running`` only while a run holds the folder; a notebook opened
    by hand (in JupyterLab, or papermill) says so, since its tables may not follow the profile shown."""
    status = str(entry.get("status", ""))
    if status != "running" or writing:
        return status
    if entry.get("opened_by") == "hand":
        return f"opened by hand at {entry.get('opened', '?')}: its outputs may not follow the profile shown"
    return "stopped before its end (no run holds the folder)"


def provenance_html(folder: Path, config: dict[str, Any], manifest: dict[str, Any], broken: Sequence[str] = ()) -> str:
    """What made the run: profile, seed, device, commit, platform, package versions, overrides, and each notebook's
    status and time; the resolved profile in full, folded. ``broken``: the registered outputs missing or changed
    since (:func:`medadv.report.broken_outputs`), which make the run not complete whatever ``manifest.json`` says.

    Returns:
        The HTML.
    """
    profile = config.get("profile", {})
    complete = "yes" if manifest.get("complete") and not broken else "no"
    if broken:
        complete += f" ({len(broken)} registered output(s) missing or changed since the run)"
    rows = [
        ("profile", profile.get("name", manifest.get("profile", "?"))),
        ("data set", data_set_words(profile.get("data", {}))),
        ("seed", config.get("seed", "")),
        ("device", config.get("device", "")),
        ("git commit", config.get("git_commit", "")),
        ("platform", config.get("platform", "")),
        ("overrides (--set)", ", ".join(config.get("overrides", [])) or "none"),
        ("started", manifest.get("started", "")),
        ("finished", manifest.get("finished", "")),
        ("complete", complete),
        ("versions", ", ".join(f"{k} {v}" for k, v in config.get("versions", {}).items())),
    ]
    items = "".join(
        f"<tr><th>{_esc(k)}</th><td style='text-align:left;white-space:normal'>{_esc(v)}</td></tr>" for k, v in rows
    )
    writing = other_writer(folder) is not None
    notebooks = pd.DataFrame(
        [
            {
                "notebook": k,
                "status": _status_words(v, writing),
                "seconds": v.get("seconds"),
                "finished": v.get("finished", ""),
            }
            for k, v in manifest.get("notebooks", {}).items()
        ]
    )
    timing = format_table(notebooks).to_html(index=False, border=0) if len(notebooks) else ""
    return (
        f'<div class="table-box"><table>{items}</table></div><div class="table-box">{timing}</div>'
        f"<details><summary>The resolved profile</summary><pre>{_esc(json.dumps(profile, indent=1))}</pre></details>"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def _notebook_pages(folder: Path, out: Path) -> dict[str, str]:
    """Render every executed notebook of the folder into ``report/notebooks/``.

    Returns:
        ``{notebook stem: its page's path relative to the report}``.
    """
    pages = {}
    RunLayout(out).notebooks.mkdir()
    for notebook in sorted(RunLayout(folder).notebooks.glob("*.ipynb")):
        render_notebook(notebook, RunLayout(out).notebooks / f"{notebook.stem}.html")
        pages[notebook.stem] = f"notebooks/{notebook.stem}.html"
    return pages


def _outputs_html(folder: Path, out: Path, pages: dict[str, str]) -> str:
    """One section per notebook: a link to its rendered page, then its figures and tables in the order it shows them.

    Returns:
        The HTML.
    """
    parts = []
    for notebook, items in sorted(collect_outputs(folder).items(), key=lambda kv: (kv[0] == "other", kv[0])):
        link = f' &middot; <a href="{pages[notebook]}">the executed notebook</a>' if notebook in pages else ""
        parts.append(f'<h3 id="nb-{_esc(notebook)}">{_esc(notebook)}{link}</h3>')
        parts += [_figure(folder, out, i) if i.kind == "figure" else _table(folder, out, i) for i in items]
    return "".join(parts)


def _header(
    folder: Path, config: dict[str, Any], manifest: dict[str, Any], what: str, seeds: str, broken: Sequence[str] = ()
) -> str:
    name = config.get("profile", {}).get("name", manifest.get("profile", "?"))
    parts = [
        f"<h1>medadv {what}: {_esc(folder.name)}</h1>",
        f"<p>Profile <code>{_esc(name)}</code>, {_esc(seeds)}, device "
        f"{_esc(config.get('device', '?'))}. {_esc(config.get('intended_use') or INTENDED_USE)}</p>",
    ]
    if manifest and not config:
        parts.append(
            f'<p class="banner"><b>config.json is missing</b> from this run folder: the seed, device and settings '
            f"the run was made with are unknown. Restore it, or rerun with <code>medadv run --run-dir "
            f"{_esc(folder)} --force</code>.</p>"
        )
    if broken:
        parts.append(
            f'<p class="banner"><b>This run folder has changed since the run</b>: {len(broken)} registered '
            f"output(s) are missing or no longer match their sha256 in manifest.json ({_esc(first_names(broken))}); "
            f"what they showed is missing or different below. <code>medadv run --run-dir {_esc(folder)}</code> "
            "remakes them.</p>"
        )
    holder = other_writer(folder)
    if holder is not None:
        parts.append(
            f'<p class="banner"><b>A run is writing this folder</b> (pid {_esc(holder.get("pid"))} on host '
            f"{_esc(holder.get('host'))}, since {_esc(holder.get('since'))}): this report shows its state at "
            "the moment it was written. Write it again when the run has ended.</p>"
        )
    if name == SMOKE_PROFILE:
        real = config.get("profile", {}).get("data", {}).get("manifest")
        cohort = "on the data set named below" if real else "on the phantom, a tiny cohort"
        parts.append(
            f'<p class="banner"><b>A smoke run</b>: one short epoch per stage ({cohort}). It checks that the kit '
            "runs end to end; its numbers are not results (its figures carry the same mark).</p>"
        )
    if manifest and not manifest.get("complete"):
        parts.append(
            '<p class="banner"><b>This run is not complete</b>: some notebooks have not run to their end under '
            "<code>medadv run</code> (see Provenance), so what they show below may be missing, or come from a "
            "notebook run by hand while its executed copy linked here is the runner's last. <code>medadv run "
            f"--run-dir {_esc(folder)}</code> (with the folder's options) completes it.</p>"
        )
    return "".join(parts)


def _sweep_runs_html(folder: Path, record: dict[str, Any]) -> str:
    rows = []
    for run, entry in sorted(record.get("runs", {}).items()):
        report = RunLayout(folder / run).report / "index.html"
        link = (
            f'<a href="../{_esc(run)}/{report.parent.name}/index.html">report</a>' if report.is_file() else "no report"
        )
        rows.append(
            f"<tr><td>{_esc(run)}</td><td>{_esc(entry.get('seed', ''))}</td><td>{_esc(entry.get('setting', ''))}"
            f"</td><td>{_esc(entry.get('status', ''))}</td><td>{_esc(entry.get('attempts', ''))}</td>"
            f"<td>{_esc(entry.get('seconds', ''))}</td><td>{link}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("run", "seed", "setting", "status", "attempts", "seconds", "its report"))
    return f'<div class="table-box"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def report_body(folder: Path, out: Path) -> str:
    """The index page's body for a run folder or a sweep folder (``sweep.json``), writing the figures, tables and
    notebook pages it links into ``out``.

    Returns:
        The HTML body.
    """
    layout = RunLayout(folder)
    config, manifest = read_json(layout.config, default={}), read_json(layout.manifest, default={})
    record = read_json(folder / SWEEP_FILE)
    pages = _notebook_pages(folder, out)
    nav = (
        '<nav><a href="#verdicts">verdicts</a><a href="#effects">effects</a><a href="#outputs">figures and tables'
        '</a><a href="#provenance">provenance</a></nav>'
    )
    broken = broken_outputs(folder, manifest) if record is None else []
    if record is None:
        parts = [
            _header(folder, config, manifest, "run", f"seed {config.get('seed', '?')}", broken),
            nav,
            '<h2 id="verdicts">Verdicts</h2><h3>Has the classifier under study learned?</h3>',
            competence_html(read_json(layout.summary, default={})),
            "<h3>Gradient masking</h3>",
            masking_html(RunLayout(folder).tables / f"{SANITY_TABLE}.csv"),
            '<h2 id="effects">Declared effects</h2><p>Each headline effect the profile declares, its value with a '
            "95% interval, and whether it holds; an effect is interpretable when every classifier it reads passed "
            "notebook 01's competence gate and is not degenerate.</p>",
            effects_html(folder, config),
        ]
    else:
        seeds = sorted({entry.get("seed") for entry in record.get("runs", {}).values()} - {None})
        parts = [
            _header(
                folder,
                config,
                {},
                f"sweep over {len(record.get('runs', {}))} runs",
                "seeds " + ", ".join(map(str, seeds)),
            ),
            nav,
            '<h2 id="verdicts">Runs</h2><p>Each seed is an ordinary run folder with its own report. Whether each '
            "seed's classifier learned and how each declared effect fared over the seeds: notebook 90's tables "
            '<a href="#table-replication_competence">replication_competence</a> and <a href="#table-replication_'
            'effects">replication_effects</a>, and its forest plot, below.</p>',
            _sweep_runs_html(folder, record),
            '<h2 id="effects">Declared effects over the seeds</h2>',
            '<p>See <a href="#figure-replication_forest">the forest plot</a> and the tables of notebook 90.</p>'
            if (RunLayout(folder).figures / "replication_forest.png").is_file()
            else '<p class="banner"><b>Notebook 90 has not completed</b> over this sweep: no forest plot or '
            "replication tables. Its executed notebook (<code>notebooks/90_replication.ipynb</code>, where present) "
            "says why; rerun the sweep's command to run it again.</p>",
        ]
    parts += [
        '<h2 id="outputs">Figures and tables, notebook by notebook</h2>',
        _outputs_html(folder, out, pages),
        '<h2 id="provenance">Provenance</h2>',
        provenance_html(folder, config, manifest, broken),
    ]
    return "".join(parts)


def write_report(folder: str | Path) -> Path:
    """Write ``<folder>/report/`` for a run folder (``manifest.json``) or a sweep folder (``sweep.json``), replacing
    an earlier report there.

    Returns:
        The path of ``report/index.html``.

    Raises:
        RunError: ``folder`` is neither a run folder nor a sweep folder.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise RunError(f"{folder}: no such folder; give the folder that medadv run or medadv sweep wrote.")
    if not (RunLayout(folder).manifest.is_file() or (folder / SWEEP_FILE).is_file()):
        raise RunError(
            f"{folder}: not a run folder (no {MANIFEST_FILE}) or a sweep folder (no {SWEEP_FILE}); give the "
            "folder that medadv run or medadv sweep wrote."
        )
    out = RunLayout(folder).report
    partial = folder / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for sub in (RunLayout(partial).figures, RunLayout(partial).tables):
        sub.mkdir(parents=True)
    body = report_body(folder, partial)
    (partial / "index.html").write_text(_page(f"medadv report: {folder.name}", body), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    LOG.info("report: %s", out / "index.html")
    return out / "index.html"


def main(argv: Sequence[str] | None = None) -> int:
    """``medadv report RUN``: write the run's (or sweep's) ``report/index.html``.

    Returns:
        0, or 2 when the folder is refused (the reason logged).
    """
    parser = argparse.ArgumentParser(
        prog="medadv report",
        description="Write a run's or a sweep's report/index.html: "
        "profile, provenance, verdicts, effects, every figure and table, each executed "
        "notebook as a page; self-contained and offline.",
    )
    parser.add_argument("run_dir", help="a run folder (medadv run) or a sweep folder (medadv sweep)")
    args = parser.parse_args(argv)
    log = console_logger()
    try:
        path = write_report(args.run_dir)
    except MedadvError as exc:
        log.error(f"medadv report: error: {exc}")
        return 2
    holder = other_writer(Path(args.run_dir))
    if holder is not None:
        log.warning(
            f"medadv report: a run (pid {holder.get('pid')} on host {holder.get('host')}) is writing {args.run_dir}; "
            "the report shows its state now (the report says so). Write it again when the run has ended."
        )
    log.info(f"medadv report: {path}")
    return 0
