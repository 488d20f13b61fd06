"""WebShop env: pages, actions, search, expert, data command; runs offline on the synthetic catalog."""

import random

import gymnasium as gym
import pytest

import agentgym
from agentgym.core import has_capability
from agentgym.envs.webshop import data as wdata
from agentgym.envs.webshop.catalog import GROUNDING, generate_raw_products, instruction_type, load_catalog
from agentgym.envs.webshop.env import query_candidates
from agentgym.envs.webshop.search import SearchEngine, document_text, import_bm25s


@pytest.fixture
def env():
    e = agentgym.make("WebShop-v0")
    yield e
    e.close()


def test_registry():
    assert agentgym.resolve_id("webshop") == "WebShop-v0"
    e = gym.make("agentgym/WebShop-v0")
    obs, info = e.reset(seed=0)
    assert obs.startswith("WebShop [SEP] Instruction: [SEP] ") and obs.endswith(" [SEP] Search")
    assert has_capability(e, "expert_action") and has_capability(e, "snapshot")


def test_catalog_schema_and_goals():
    cat = load_catalog()
    assert len(cat.products) == 1000 and all(p["synthetic"] for p in cat.products)
    goal = cat.goals[0]
    assert set(goal) >= {"asin", "query", "name", "product_category", "instruction_text", "attributes",
                         "price_upper", "goal_options", "weight"}
    p = cat.by_asin[goal["asin"]]
    assert set(goal["goal_options"]) == set(p["options"])            # one value per option name
    assert cat.prices[goal["asin"]] < goal["price_upper"] or goal["price_upper"] == 1000000
    assert instruction_type("Find me easy carry, high quality refillable containers with rose gold",
                            ["easy carry", "high quality", "rose gold"]) == "refillable containers"
    raw, att = generate_raw_products(1200, seed=0)
    assert len({p["asin"] for p in raw}) == 1200 and sum("instruction" in v for v in att.values()) == 415


def test_bm25s_is_imported_without_touching_jax(monkeypatch):
    # bm25s probes JAX at import, and JAX's first call takes 75% of the GPU: it must never run
    import importlib.abc
    import sys

    tried = []

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "jax":
                tried.append(name)
            return None

    for name in [m for m in sys.modules if m == "bm25s" or m.startswith("bm25s.")]:
        monkeypatch.delitem(sys.modules, name)                  # restored after the test
    monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])
    bm25s = import_bm25s()
    assert tried == [] and "jax" not in sys.modules
    assert not bm25s.selection.JAX_IS_AVAILABLE


def test_search_indexes_webshop_document_text():
    cat = load_catalog()
    engine = SearchEngine(cat.products)
    p = cat.by_asin[cat.goals[3]["asin"]]
    assert document_text(p).startswith(p["Title"].lower())
    hits = engine.search(p["Title"])
    assert hits[0] == p["asin"] and len(hits) <= 50
    assert engine.search("zzzqqq unknownword") == [] and engine.search("the and of") == []


def test_page_flow(env):
    obs, info = env.reset(seed=5)
    goal = env.unwrapped.goal
    assert info["instruction"] == goal["instruction_text"] and not info["invalid_action"]
    assert all(a.startswith("search[") for a in info["admissible_actions"])
    obs, r, term, trunc, info = env.step(info["admissible_actions"][0])
    assert "Back to Search [SEP] Page 1 (Total results: " in obs and r == 0.0 and not term
    total = int(obs.split("Total results: ")[1].split(")")[0])
    assert ("click[Next >]" in info["admissible_actions"]) == (total > 10)
    obs, r, term, trunc, info = env.step("click[next >]")         # case-insensitive, as WebShop
    assert "Page 2 (Total" in obs and "click[< Prev]" in info["admissible_actions"]
    obs, *_ , info = env.step("click[< Prev]")
    asin = next(a for a in info["admissible_actions"] if a.startswith("click[") and a[6:-1].isalnum()
                and a[6:-1] not in ("Reviews",))[6:-1]
    obs, *_, info = env.step(f"click[{asin}]")
    assert "Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now" in obs
    obs, *_, info = env.step("click[Features]")
    assert info["page"] == "sub" and set(info["admissible_actions"]) == {"click[Back to Search]", "click[< Prev]"}
    obs, *_, info = env.step("click[< Prev]")
    assert info["page"] == "item"
    obs, r, term, trunc, info = env.step("click[Buy Now]")
    assert term and 0.0 <= r <= 1.0 and "Your score (min 0.0, max 1.0)" in obs and info["score"] == r
    obs, r, term, trunc, info = env.step("click[Buy Now]")
    assert info["invalid_action"] and r == 0.0


def test_invalid_actions_are_observations(env):
    obs, info = env.reset(seed=1)
    page = env.unwrapped.observation()
    for bad in ["", "search[]", "search[   ]", "click[Buy Now]", "click[nothing]", "buy", "search[x" * 3,
                "search[" + "a" * 5000 + "]", "click[Search]", "\u4e2d\U0001f600", None, 7]:
        obs, r, term, trunc, info = env.step(bad)
        assert info["invalid_action"] and r == 0.0 and not term and obs.startswith("Invalid action:"), bad
        assert obs.endswith(page)                          # the page does not change
    obs, r, term, trunc, info = env.step("Thought: look for it.\nAction: search[red shirt]")
    assert not info["invalid_action"] and info["page"] == "results"
    obs, r, term, trunc, info = env.step("search[red shirt]")    # only on the search page
    assert info["invalid_action"] and "Back to Search" in info["error"]


def test_empty_search_results(env):
    env.reset(seed=2)
    obs, r, term, trunc, info = env.step("search[qqqzzzxxy]")
    assert not info["invalid_action"] and "Page 1 (Total results: 0)" in obs
    assert info["admissible_actions"] == ["click[Back to Search]"]


def test_options_and_rewards_only_at_buy(env):
    env.reset(seed=11)
    rewards = []
    while True:
        obs, r, term, trunc, info = env.step(env.unwrapped.expert_action())
        rewards.append(r)
        if term or trunc:
            break
    assert all(x == 0.0 for x in rewards[:-1]) and rewards[-1] > 0
    chosen = env.unwrapped.get_state()["options"]
    assert chosen == env.unwrapped.goal["goal_options"] or env.unwrapped.goal["asin"] != env.unwrapped._s["asin"]


def test_seeds_pick_goals(env):
    a = env.reset(seed=3)[0]
    assert env.reset(seed=3)[0] == a and len({env.reset(seed=s)[0] for s in range(10)}) > 5
    env.reset(options={"goal_index": 7})
    assert env.unwrapped.goal is env.unwrapped.goals[7]
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"goal_index": 10**9})


def test_snapshot_restores(env):
    env.reset(seed=4)
    env.step(env.unwrapped.expert_action())
    snap = env.unwrapped.get_state()
    before = env.unwrapped.observation()
    env.step("click[Back to Search]")
    env.unwrapped.set_state(snap)
    assert env.unwrapped.observation() == before


def test_expert_solves_most():
    e = agentgym.make("WebShop-v0")
    scores, wins = [], 0
    for seed in range(40):
        obs, info = e.reset(seed=seed)
        done = False
        while not done:
            a = e.unwrapped.expert_action()
            assert a in info["admissible_actions"], (a, info["admissible_actions"])
            obs, r, term, trunc, info = e.step(a)
            assert not info["invalid_action"]
            done = term or trunc
        scores.append(r)
        wins += info["success"]
    assert sum(scores) / len(scores) > 0.9 and wins >= 32


def test_query_candidates():
    q = query_candidates("Find me long sleeve shirts with color: red, and size: large, and price lower than 40.00 dollars")
    assert q == ["find me long sleeve shirts with color: red, and size: large", "find me long sleeve shirts",
                 "long sleeve shirts"]


def test_bad_config_is_clear():
    with pytest.raises(ValueError, match="split"):
        agentgym.make("WebShop-v0", split="nope")
    with pytest.raises(ValueError, match="source"):
        agentgym.make("WebShop-v0", source="nope")
    with pytest.raises(FileNotFoundError, match="items_human_ins"):
        agentgym.make("WebShop-v0", goals="human", data="/nonexistent")


def test_fuzz_never_raises(env):
    env.reset(seed=1)
    rng = random.Random(0)
    alphabet = "abc[]click search()<>\n\t\u00e9\u4e2d\U0001f600\x00 "
    for i in range(1500):
        n = rng.choice([0, 1, 5, 30, 300, 5000])
        text = "".join(rng.choice(alphabet) for _ in range(n))
        if i % 7 == 0 and env.unwrapped.admissible_actions():
            text = rng.choice(env.unwrapped.admissible_actions())
        obs, r, term, trunc, info = env.step(text)
        assert isinstance(obs, str) and obs and isinstance(info["invalid_action"], bool)
        if term or trunc:
            env.reset(seed=i)


def test_data_command(tmp_path):
    assert wdata.main(["generate", "--num-products", "30", "--out", str(tmp_path)]) == 0
    assert wdata.main(["check", "--dest", str(tmp_path)]) == 1            # real files absent
    (tmp_path / "items_ins_v2_1000.json").write_bytes(GROUNDING.read_bytes())
    assert wdata.check(tmp_path)["items_ins_v2_1000.json"] == "ok"
    (tmp_path / "items_human_ins.json").write_text("{}")
    assert wdata.check(tmp_path)["items_human_ins.json"] == "sha256 mismatch"
    # files in WebShop's format load through the real-data path
    env = agentgym.make("WebShop-v0", source="real", num_products=30, data=str(tmp_path))
    obs, info = env.reset(seed=0)
    assert obs.startswith("WebShop [SEP]") and env.unwrapped.catalog.name == "real-30-synthetic"
