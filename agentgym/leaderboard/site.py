"""The static board: results folders -> index.html, a page per submission, leaderboard.md.

    build_site("results/", "site/")

Every number is recomputed from episodes.jsonl (summary.json is the runner's copy, not read
here), and every string from a results folder is escaped: the folders come from untrusted
containers and from pull requests. The pages load nothing (no server, no CDN; a
Content-Security-Policy forbids any fetch and any script but the page's own), so they work
offline from file://.

An env's headline number is its family score when its records have one on a 0-1 scale (WebShop
score), else its success rate (a score on another scale, Overcooked's soups, is shown beside it);
submissions are ranked by the average of their headline numbers over the board's envs (an env a
submission lacks counts 0), so every env weighs the same.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentgym.leaderboard.errors import LeaderboardError
from agentgym.leaderboard.runner import SCHEMA, TRAJECTORIES_PER_ENV, check_fields, parse_json
from agentgym.leaderboard.stats import paired_difference, summarize

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")  # a submission folder is also a file name on the board
TURNS_SHOWN = 40
TEXT_SHOWN = 2000  # characters of one observation or action

@dataclass
class Submission:
    name: str
    manifest: dict
    records: list[dict]
    summary: dict
    trajectories: list[dict]


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def read_json_lines(path: Path) -> list:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            rows.append(parse_json(line, f"{path}:{i}"))
    return rows


def check_record(record: Any, manifest: dict, where: str) -> dict:
    """One episode line as the board needs it (the runner's record checks, and its submission's suite),
    or a one-sentence error naming the line."""
    try:
        check_fields(record)
    except LeaderboardError as e:
        raise LeaderboardError(f"{where} has {e}.") from None
    if record["suite_hash"] != manifest["suite_hash"]:
        raise LeaderboardError(f"{where} is from suite {record['suite_hash']}, not {manifest['suite_hash']} like its submission.json.")
    return record


def read_trajectories(path: Path) -> list[dict]:
    """The first few trajectories per env, for the submission's page."""
    if not path.exists():
        return []
    kept, per_env = [], {}
    for i, t in enumerate(read_json_lines(path), 1):
        if not (isinstance(t, dict) and isinstance(t.get("env"), str) and isinstance(t.get("turns"), list)
                and all(isinstance(turn, dict) for turn in t["turns"])):
            raise LeaderboardError(f"{path}:{i} is not a trajectory (env, seed, turns of observation and action).")
        if per_env.get(t["env"], 0) < TRAJECTORIES_PER_ENV:
            per_env[t["env"]] = per_env.get(t["env"], 0) + 1
            kept.append(t)
    return kept


def read_submission(folder: Path) -> Submission:
    """A submission folder as the runner writes it: submission.json, episodes.jsonl, trajectories.jsonl."""
    if not SAFE_NAME.fullmatch(folder.name) or folder.name in ("index", "leaderboard"):
        raise LeaderboardError(f"{folder} is not a submission name (letters, digits and ._@+- only, not index or leaderboard).")
    path = folder / "submission.json"
    if not path.exists():
        raise LeaderboardError(f"{folder} has no submission.json, so it is not a results folder of `agentgym leaderboard run`.")
    manifest = parse_json(path.read_text(encoding="utf-8"), str(path))
    if not (isinstance(manifest, dict) and manifest.get("schema") == SCHEMA and isinstance(manifest.get("suite_hash"), str)):
        raise LeaderboardError(f"{path} is not a schema {SCHEMA} submission manifest with a suite_hash.")
    episodes = folder / "episodes.jsonl"
    rows = read_json_lines(episodes) if episodes.exists() else []
    records = [check_record(r, manifest, f"{episodes}:{i}") for i, r in enumerate(rows, 1)]
    return Submission(folder.name, manifest, records, summarize(records), read_trajectories(folder / "trajectories.jsonl"))


def read_results(results_dir: str | Path, skip: Path | None = None) -> list[Submission]:
    """Every submission under results_dir; they must share one suite version to be compared."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise LeaderboardError(f"{results_dir} is not a results folder.")
    folders = [p for p in sorted(results_dir.iterdir())
               if p.is_dir() and not p.name.startswith(".") and (skip is None or p.resolve() != skip.resolve())]
    subs = [read_submission(p) for p in folders]
    if not subs:
        raise LeaderboardError(f"{results_dir} holds no submission folders.")
    first = subs[0]
    for sub in subs[1:]:
        if sub.manifest["suite_hash"] != first.manifest["suite_hash"]:
            raise LeaderboardError(
                f"{sub.name} ran suite {sub.manifest.get('suite')} ({sub.manifest['suite_hash']}) but {first.name} ran "
                f"{first.manifest.get('suite')} ({first.manifest['suite_hash']}); build one board per suite version.")
    return subs


@dataclass
class Board:
    """Submissions ranked, the envs in order, and each env's headline key ("score" or "success")."""
    subs: list[Submission]
    envs: list[str]
    keys: dict[str, str]

    def headline(self, sub: Submission, env: str) -> dict | None:
        entry = sub.summary.get(env)
        return None if entry is None else entry[self.keys[env]]

    def average(self, sub: Submission) -> float:
        values = [h[center(h)] for h in (self.headline(sub, env) for env in self.envs) if h and h[center(h)] is not None]
        return sum(values) / max(len(self.envs), 1)


def center(stat: dict) -> str:
    return "rate" if "rate" in stat else "mean"


def make_board(subs: list[Submission]) -> Board:
    envs = list(dict.fromkeys(env for sub in subs for env in sub.summary))
    def unit_score(env: str) -> bool:
        scores = [r["score"] for sub in subs for r in sub.records if r["env"] == env and r["score"] is not None]
        return bool(scores) and all(0.0 <= x <= 1.0 for x in scores)

    keys = {env: "score" if unit_score(env) else "success" for env in envs}
    board = Board(subs, envs, keys)
    board.subs = sorted(subs, key=lambda s: (-board.average(s), s.name))
    return board


def paired_rows(board: Board) -> list[dict]:
    """Headline differences for every two submissions (higher-ranked first) that ran the same seeds of an env."""
    rows = []
    for i, a in enumerate(board.subs):
        for b in board.subs[i + 1:]:
            for env in board.envs:
                d = paired_difference([r for r in a.records if r["env"] == env],
                                      [r for r in b.records if r["env"] == env], board.keys[env])
                if d["n"]:
                    rows.append({"env": env, "a": a.name, "b": b.name, "key": board.keys[env], **d})
    return rows


def paired_table(results_dir: str | Path) -> list[dict]:
    """Paired differences between the submissions under results_dir (see paired_rows)."""
    return paired_rows(make_board(read_results(results_dir)))


# ---- formatting ----------------------------------------------------------------------------

def num(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def pm(stat: dict | None) -> str:
    """'mean ± CI half-width' for a mean; 'rate [lo, hi]' for a rate (Wilson intervals are not symmetric)."""
    if stat is None or stat["n"] == 0:
        return "—"
    if "rate" in stat:
        return f"{num(stat['rate'])} [{num(stat['lo'])}, {num(stat['hi'])}]"
    if stat["hi"] is None:
        return f"{num(stat['mean'])} (n=1)"
    return f"{num(stat['mean'])} ± {num(stat['hi'] - stat['mean'])}"


def beside(board: Board, env: str, entry: dict) -> str:
    """The number shown under the headline: the success rate under a score, a score on its own scale
    (Overcooked's soups) under a success rate."""
    if board.keys[env] == "score":
        return f"success {pm(entry['success'])}"
    if entry["score"]["n"]:
        return f"{entry.get('score_name') or 'score'} {pm(entry['score'])}"
    return ""


def headline_name(board: Board, env: str) -> str:
    if board.keys[env] == "success":
        return "success"
    return next((s.summary[env]["score_name"] for s in board.subs if s.summary.get(env, {}).get("score_name")), "score")


def groups_text(entry: dict) -> str:
    return " · ".join(f"{g} {num(w['rate'])}" for g, w in entry["groups"].items())


# ---- pages ---------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; }
table.board th { cursor: pointer; user-select: none; background: #f4f4f4; }
table.board th[aria-sort=descending]::after { content: " ▼"; }
table.board th[aria-sort=ascending]::after { content: " ▲"; }
small, .note { color: #666; }
code { background: #f4f4f4; padding: 0 .2em; }
figure { display: inline-block; margin: 0 2em 1em 0; }
svg .bar { fill: #4a7fb0; }
svg .ci { stroke: #222; stroke-width: 1.5; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
table.summary td { white-space: nowrap; }
pre { white-space: pre-wrap; margin: .2em 0; background: #f8f8f8; padding: .3em; }
"""

# Sorts table.board by a clicked header: the first click goes its data-first way, the next reverses.
SORT_JS = """
for (const th of document.querySelectorAll("table.board th")) {
  th.addEventListener("click", () => {
    const table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    const first = th.dataset.first, other = first === "ascending" ? "descending" : "ascending";
    const dir = th.getAttribute("aria-sort") === first ? other : first;
    for (const h of table.querySelectorAll("th")) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir);
    const key = row => row.cells[col].dataset.sort;
    const numeric = th.dataset.type === "num", sign = dir === "ascending" ? 1 : -1;
    const rows = Array.from(body.rows).sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");  // missing values last
      return sign * (numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y));
    });
    for (const row of rows) body.appendChild(row);
  });
}
"""


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page(title: str, body: str, script: str = "") -> str:
    csp = f"default-src 'none'; style-src {sha256_source(CSS)}"
    if script:
        csp += f"; script-src {sha256_source(script)}"
    tail = f"<script>{script}</script>" if script else ""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
            f"<title>{e(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n{tail}</body></html>\n")


def suite_line(board: Board) -> str:
    m = board.subs[0].manifest
    return f"Suite <code>{e(m.get('suite'))}</code>, hash <code>{e(m['suite_hash'])}</code>, {len(board.subs)} submissions."


def index_html(board: Board, pairs: list[dict]) -> str:
    def th(label, kind, first, extra=""):
        return f'<th class="{"n" if kind == "num" else ""}" data-type="{kind}" data-first="{first}"{extra}>{label}</th>'

    head = (th("#", "num", "ascending") + th("submission", "text", "ascending") + th("policy", "text", "ascending")
            + th("average", "num", "descending", ' aria-sort="descending"')
            + "".join(th(f"{e(env)}<br><small>{e(headline_name(board, env))}</small>", "num", "descending") for env in board.envs))
    rows = []
    for rank, sub in enumerate(board.subs, 1):
        mark = "" if sub.manifest.get("finished") else " <small>(unfinished)</small>"
        if sub.manifest.get("verified"):
            mark += ' <small class="verified" title="a maintainer\'s re-run gave the same episodes">✓ verified</small>'
        cells = [f'<td class="n" data-sort="{rank}">{rank}</td>',
                 f'<td data-sort="{e(sub.name)}"><a href="{quote(sub.name)}.html">{e(sub.name)}</a>{mark}</td>',
                 f'<td data-sort="{e(sub.manifest.get("policy"))}">{e(sub.manifest.get("policy"))}</td>',
                 f'<td class="n" data-sort="{board.average(sub)!r}">{num(board.average(sub))}</td>']
        for env in board.envs:
            h, entry = board.headline(sub, env), sub.summary.get(env)
            if entry is None or h[center(h)] is None:
                cells.append('<td class="n" data-sort="">—</td>')
                continue
            extra = f"<br><small>{e(beside(board, env, entry))}</small>" if beside(board, env, entry) else ""
            if entry["groups"]:
                extra += f"<br><small>{e(groups_text(entry))}</small>"
            cells.append(f'<td class="n" data-sort="{h[center(h)]!r}">{e(pm(h))}{extra}</td>')
        rows.append(f'<tr data-submission="{e(sub.name)}">{"".join(cells)}</tr>')
    body = [f"<h1>agentgym leaderboard</h1>\n<p>{suite_line(board)}</p>",
            f'<table class="board"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(rows) + "\n</tbody></table>",
            '<p class="note">Each cell: the env\'s family score (mean ± 95% Student-t half-width) where it has one, '
            "else its success rate [95% Wilson interval]; under it the success rate and, per role, the win rate. "
            "Episodes that timed out or failed count as failures. Average: the mean over envs of the first number "
            "(an env not run counts 0). Click a header to sort.</p>",
            "<h2>Per env</h2>\n" + "\n".join(bars_svg(board, env) for env in board.envs),
            "<h2>Paired differences</h2>\n" + pairs_html(pairs)]
    return page(f"leaderboard {board.subs[0].manifest.get('suite')}", "\n".join(body), SORT_JS)


def bars_svg(board: Board, env: str) -> str:
    """One horizontal bar per submission with its CI as a whisker, drawn in inline SVG (no JS library)."""
    label_w, bar_w, row_h = 130, 260, 22
    stats = [(sub.name, board.headline(sub, env)) for sub in board.subs]
    stats = [(name, h) for name, h in stats if h and h[center(h)] is not None]
    top = 1.0 if board.keys[env] == "success" else max([h["hi"] or h[center(h)] for _, h in stats] + [1e-9])

    def x(v):
        return label_w + bar_w * min(max(v, 0.0), top) / top

    parts = []
    for i, (name, h) in enumerate(stats):
        y, v = i * row_h, h[center(h)]
        parts.append(f'<text x="0" y="{y + 15}">{e(name[:18])}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{x(v) - label_w:.1f}" height="14"></rect>')
        if h["lo"] is not None:
            parts.append(f'<line class="ci" x1="{x(h["lo"]):.1f}" x2="{x(h["hi"]):.1f}" y1="{y + 11}" y2="{y + 11}"></line>')
        parts.append(f'<text x="{label_w + bar_w + 8}" y="{y + 15}">{num(v)}</text>')
    height = max(len(stats), 1) * row_h
    return (f"<figure><figcaption><b>{e(env)}</b> <small>{e(headline_name(board, env))}</small></figcaption>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 50}" height="{height}" '
            f'role="img" aria-label="{e(env)}">{"".join(parts)}</svg></figure>')


def pairs_html(pairs: list[dict]) -> str:
    if not pairs:
        return "<p>No two submissions share seeds.</p>"
    rows = "".join(f"<tr><td>{e(p['env'])}</td><td>{e(p['a'])} − {e(p['b'])}</td><td>{e(p['key'])}</td>"
                   f'<td class="n">{e(pm(p))}</td><td class="n">{p["n"]}</td></tr>' for p in pairs)
    return ('<table class="pairs"><thead><tr><th>env</th><th>difference</th><th>of</th><th class="n">mean ± 95% CI</th>'
            f'<th class="n">seeds</th></tr></thead><tbody>{rows}</tbody></table>'
            '<p class="note">Matched by (env, seed): the seeds\' own difficulty cancels, so these intervals are '
            "tighter than comparing the board's cells.</p>")


def submission_html(board: Board, sub: Submission) -> str:
    manifest = "".join(f"<tr><th>{e(k)}</th><td><code>{e(v if isinstance(v, str) else json.dumps(v))}</code></td></tr>"
                       for k, v in sub.manifest.items())
    head = ["env", "env id", "episodes", "success [95% CI]", "return ± CI", "score ± CI", "turns", "invalid actions",
            "errors", "timeouts", "win rate per role"]
    rows = "".join(
        f"<tr><td>{e(env)}</td><td>{e(s['env_id'])}</td><td class=\"n\">{s['n']}</td><td>{e(pm(s['success']))}</td>"
        f"<td>{e(pm(s['return']))}</td><td>{e(pm(s['score']))} <small>{e(s['score_name'] or '')}</small></td>"
        f"<td class=\"n\">{num(s['turns'])}</td><td class=\"n\">{num(s['invalid_actions'])}</td>"
        f"<td class=\"n\">{s['errors']}</td><td class=\"n\">{s['timeouts']}</td><td>{e(groups_text(s))}</td></tr>"
        for env, s in sub.summary.items())
    body = [f'<p><a href="index.html">← leaderboard</a></p>\n<h1>{e(sub.name)}</h1>\n<p>{suite_line(board)}</p>',
            f"<h2>Manifest</h2>\n<table>{manifest}</table>",
            "<h2>Per env</h2>\n<table class=\"summary\"><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
            + f"</tr></thead><tbody>{rows}</tbody></table>",
            "<h2>Trajectories</h2>\n" + ("\n".join(trajectory_html(t) for t in sub.trajectories) or "<p>None recorded.</p>")]
    return page(sub.name, "\n".join(body))


def clip(text: Any) -> str:
    text = str(text)
    return text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN] + f" … ({len(text) - TEXT_SHOWN} more characters)"


def trajectory_html(t: dict) -> str:
    turns = "".join(f"<li><pre>{e(clip(turn.get('observation', '')))}</pre><pre>&gt; {e(clip(turn.get('action', '')))}</pre></li>"
                    for turn in t["turns"][:TURNS_SHOWN])
    more = f"<p>… {len(t['turns']) - TURNS_SHOWN} more turns</p>" if len(t["turns"]) > TURNS_SHOWN else ""
    return (f"<details><summary>{e(t['env'])} seed {e(t.get('seed'))}: {len(t['turns'])} turns, return "
            f"{e(t.get('return'))}, success {e(t.get('success'))}</summary><ol>{turns}</ol>{more}</details>")


def md(text: Any) -> str:
    return html.escape(str(text)).replace("|", "\\|").replace("\n", " ")


def leaderboard_md(board: Board) -> str:
    m = board.subs[0].manifest
    head = ["#", "submission", "policy", "average"] + [f"{env} ({headline_name(board, env)})" for env in board.envs]
    lines = [f"Suite `{md(m.get('suite'))}` (`{md(m['suite_hash'])}`): the env's family score (mean ± 95% CI) where it "
             "has one, else its success rate [95% Wilson interval]; average over envs of that number.", "",
             "| " + " | ".join(md(h) for h in head) + " |", "|---:|---|---|---:|" + "---:|" * len(board.envs)]
    for rank, sub in enumerate(board.subs, 1):
        name = sub.name + (" ✓ verified" if sub.manifest.get("verified") else "")
        cells = [str(rank), md(name), md(sub.manifest.get("policy")), num(board.average(sub))]
        for env in board.envs:
            entry = sub.summary.get(env)
            cell = pm(board.headline(sub, env))
            if entry and beside(board, env, entry):
                cell += f" ({beside(board, env, entry)})"
            if entry and entry["groups"]:
                cell += f" ({groups_text(entry)})"
            cells.append(md(cell))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_site(results_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write index.html, <submission>.html and leaderboard.md under out_dir; nothing is written
    unless every results folder reads cleanly."""
    out_dir = Path(out_dir)
    board = make_board(read_results(results_dir, skip=out_dir))
    files = {"index.html": index_html(board, paired_rows(board)), "leaderboard.md": leaderboard_md(board)}
    files.update({f"{sub.name}.html": submission_html(board, sub) for sub in board.subs})
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    m = board.subs[0].manifest
    return {"suite": m.get("suite"), "suite_hash": m["suite_hash"], "submissions": [s.name for s in board.subs],
            "envs": board.envs, "files": [str(out_dir / name) for name in files]}
