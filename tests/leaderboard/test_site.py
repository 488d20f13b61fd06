"""The static board from results folders in the runner's format: files, order, escaping, bad input,
and the page itself in headless Chromium (order, sorting by a header, a screenshot)."""

import json
import re
import shutil
from pathlib import Path

import pytest

from agentgym.leaderboard.errors import LeaderboardError
from agentgym.leaderboard.site import build_site, paired_table

SUITE_HASH = "sha256:" + "ab" * 32
SEEDS = range(1000, 1010)
HOSTILE = "<script>alert(1)</script>"
# name -> (WebShop score before noise, Werewolf wins out of 10): the board's order follows by construction
SUBMISSIONS = {"random": (0.1, 4), "expert": (0.9, 6), "smollm": (0.6, 2)}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def episode(name, env, seed, ret, success, score=None, status="ok", group=None, suite_hash=SUITE_HASH):
    return {"schema": 1, "suite": "core@1", "suite_hash": suite_hash, "submission": name, "env": env,
            "env_id": {"webshop": "WebShop-v0", "werewolf": "Werewolf-v0"}[env], "seed": seed, "policy": name,
            "model_hash": None, "config_hash": "sha256:" + "cd" * 32, "agentgym_version": "0.1.0", "git_sha": "f37ed52",
            "image": None, "return": ret, "success": success, "score": score,
            "score_name": "webshop score" if score is not None else None, "turns": 5, "invalid_actions": seed % 2,
            "tokens": 300, "wall_s": 1.5, "status": status, "error": "boom" if status == "error" else None, "group": group}


def write_submission(results, name, shop_base, wolf_wins, suite_hash=SUITE_HASH, model=None):
    """One submission folder as `agentgym leaderboard run` writes it (summary.json aside: the board recomputes it)."""
    folder = results / name
    folder.mkdir(parents=True)
    manifest = {"schema": 1, "submission": name, "suite": "core@1", "suite_hash": suite_hash, "policy": name,
                "model": model, "model_hash": None, "agentgym_version": "0.1.0", "git_sha": "f37ed52", "image": None,
                "docker": False, "started": "2025-01-01T00:00:00", "finished": "2025-01-01T00:05:00"}
    (folder / "submission.json").write_text(json.dumps(manifest))
    records = []
    for i, seed in enumerate(SEEDS):
        score = shop_base + (i % 5 - 2) * 0.02  # noise summing to 0 over the seeds: the mean is shop_base
        records.append(episode(name, "webshop", seed, score, score > 0.9, score=score, suite_hash=suite_hash))
    for i, seed in enumerate(SEEDS):
        role = "werewolf" if i % 2 else "villager"
        status = "error" if i == len(SEEDS) - 1 else "ok"  # the last episode broke: a failure
        records.append(episode(name, "werewolf", seed, float(i < wolf_wins), i < wolf_wins, status=status, group=role,
                               suite_hash=suite_hash))
    (folder / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    turns = [{"observation": f"<img src=x onerror=alert(1)> {name} looks around", "action": "search[red shoes]"}]
    (folder / "trajectories.jsonl").write_text(
        json.dumps({"env": "webshop", "seed": 1000, "turns": turns, "return": 0.1, "success": False}) + "\n")
    return folder


@pytest.fixture
def results(tmp_path):
    for name, (shop, wins) in SUBMISSIONS.items():
        write_submission(tmp_path / "results", name, shop, wins, model=HOSTILE if name == "random" else None)
    return tmp_path / "results"


def ranked(column):
    return sorted(SUBMISSIONS, key=column, reverse=True)


BY_AVERAGE = ranked(lambda s: (SUBMISSIONS[s][0] + SUBMISSIONS[s][1] / 10) / 2)
BY_WEREWOLF = ranked(lambda s: SUBMISSIONS[s][1])


def rows(index_html):
    return re.findall(r'<tr data-submission="([^"]+)"', index_html)


def test_site_files_and_order(results, tmp_path):
    site = tmp_path / "site"
    built = build_site(results, site)
    assert built["submissions"] == BY_AVERAGE and built["envs"] == ["webshop", "werewolf"]
    assert built["suite"] == "core@1" and built["suite_hash"] == SUITE_HASH
    assert sorted(p.name for p in site.iterdir()) == sorted(["index.html", "leaderboard.md"] + [f"{s}.html" for s in SUBMISSIONS])

    index = (site / "index.html").read_text()
    assert rows(index) == BY_AVERAGE
    assert SUITE_HASH in index and "core@1" in index
    assert "<svg" in index and "webshop score" in index
    assert "villager" in index  # the per-role win rate
    assert not re.search(r"(src|href)=\"(https?:)?//", index)  # nothing from the network

    expert = (site / "expert.html").read_text()
    assert "f37ed52" in expert and "search[red shoes]" in expert and "WebShop-v0" in expert

    table = [line for line in (site / "leaderboard.md").read_text().splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(SUBMISSIONS)
    assert [line.split("|")[2].strip() for line in table[2:]] == BY_AVERAGE
    assert f"| 1 | {BY_AVERAGE[0]} |" in table[2]


def test_paired_differences(results):
    pairs = paired_table(results)
    assert len(pairs) == 3 * 2  # every two submissions, both envs
    shop = next(p for p in pairs if p["env"] == "webshop" and (p["a"], p["b"]) == ("expert", "random"))
    assert shop["key"] == "score" and shop["n"] == len(SEEDS)
    assert shop["mean"] == pytest.approx(SUBMISSIONS["expert"][0] - SUBMISSIONS["random"][0])
    wolf = next(p for p in pairs if p["env"] == "werewolf" and (p["a"], p["b"]) == ("expert", "smollm"))
    assert wolf["key"] == "success"
    assert wolf["mean"] == pytest.approx((SUBMISSIONS["expert"][1] - SUBMISSIONS["smollm"][1]) / len(SEEDS))


def test_untrusted_text_is_escaped(results, tmp_path):
    site = tmp_path / "site"
    build_site(results, site)
    for page in site.iterdir():
        text = page.read_text()
        assert HOSTILE not in text and "<img src=x" not in text, page.name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (site / "random.html").read_text()


def test_refuses_another_suite_version(results, tmp_path):
    write_submission(results, "other", 0.5, 5, suite_hash="sha256:" + "ef" * 32)
    with pytest.raises(LeaderboardError, match="one board per suite version"):
        build_site(results, tmp_path / "site")
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("field, bad, message", [
    ("suite_hash", "sha256:" + "00" * 32, "like its submission.json"),
    ("status", "crashed", "status"),
    ("success", "yes", "bad 'success'"),
])
def test_refuses_bad_records(results, tmp_path, field, bad, message):
    path = results / "smollm" / "episodes.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[3])
    record[field] = bad
    path.write_text("\n".join(lines[:3] + [json.dumps(record)] + lines[4:]) + "\n")
    with pytest.raises(LeaderboardError, match=message):
        build_site(results, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_refuses_nan(results, tmp_path):
    path = results / "expert" / "episodes.jsonl"
    path.write_text(path.read_text().replace('"return": 0.9', '"return": NaN', 1))
    with pytest.raises(LeaderboardError, match="NaN"):
        build_site(results, tmp_path / "site")


def test_board_in_chromium(results, tmp_path, skip_or_fail):
    if not CHROMIUM.exists():
        skip_or_fail("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium chromium-driver)",
                     "AGENTGYM_REQUIRE_BROWSER")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[test]')")
    site = tmp_path / "site"
    build_site(results, site)
    requests, problems = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)  # CSP refusals land here
        page.goto(site.joinpath("index.html").as_uri())

        def order():
            return page.eval_on_selector_all("table.board tbody tr", "rows => rows.map(r => r.dataset.submission)")

        assert order() == BY_AVERAGE
        werewolf = page.locator("table.board th", has_text="werewolf")
        werewolf.click()
        assert order() == BY_WEREWOLF
        assert werewolf.get_attribute("aria-sort") == "descending"
        werewolf.click()
        assert order() == BY_WEREWOLF[::-1]
        page.locator("table.board th", has_text="submission").click()
        assert order() == sorted(SUBMISSIONS)
        page.locator("table.board th", has_text="average").click()
        assert order() == BY_AVERAGE
        shot = tmp_path / "leaderboard.png"
        page.screenshot(path=str(shot), full_page=True)
        page.click(f"a[href='{BY_AVERAGE[0]}.html']")
        assert page.inner_text("h1") == BY_AVERAGE[0]
        browser.close()
    assert all(url.startswith("file://") for url in requests), requests
    assert not problems, problems
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "leaderboard.png")
