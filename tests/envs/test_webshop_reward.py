"""WebShop's reward on the 7 real products (hand-worked cases) and its fuzzy matcher."""

import json
from pathlib import Path

import pytest

from agentgym.envs.webshop.catalog import GROUNDING, clean_products
from agentgym.envs.webshop.reward import (get_reward, light_nouns, make_noun_extractor, normalize_color,
                                          token_set_ratio, type_reward)

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "webshop" / "items_shuffle_1000.first7.json"


@pytest.fixture(scope="module")
def products():
    if not REAL.is_file():
        pytest.skip(f"real WebShop products not found at {REAL}")
    return {p["asin"]: p for p in clean_products(json.loads(REAL.read_text()), json.loads(GROUNDING.read_text()))}


def goal_for(p, **over):
    g = {"asin": p["asin"], "query": p["query"], "name": p["Title"], "product_category": p["product_category"],
         "attributes": p["instruction_attributes"], "goal_options": {}, "price_upper": 40.0}
    g.update(over)
    return g


def test_cleaning_matches_webshop(products):
    s = products["B07B6DVG41"]
    assert s["Price"] == "$34.0" and s["pricing"] == [34.0] and s["query"] == "shampoo & conditioner"
    d = products["B08ZRR3DZT"]
    assert d["Price"] == "$19.99 to $27.99" and d["pricing"] == [19.99, 27.99]
    assert d["options"]["size"][:2] == ["x-small", "small"] and "light blue" in d["options"]["color"]
    assert products["B08R3XSC65"]["Attributes"] == []            # real entry with an empty attribute list


def test_full_match_is_one(products):
    s = products["B07B6DVG41"]                          # 7 instruction attributes, no options, $34 <= $40
    r = get_reward(s, goal_for(s), price=34.0, options={})
    assert r.reward == 1.0 and r.r_type == 1.0 and r.num_attr_matches == 7 and r.r_price


def test_price_over_bound(products):
    s = products["B07B6DVG41"]                          # (7 + 0 + 0) / (7 + 0 + 1)
    assert get_reward(s, goal_for(s, price_upper=30.0), price=34.0, options={}).reward == pytest.approx(7 / 8)


def test_missing_attribute(products):
    s = products["B07B6DVG41"]
    # "gluten free" vs "sulfate free" scores 70 (<= 85) and is nowhere in the text: (2 + 0 + 1) / (3 + 0 + 1)
    goal = goal_for(s, attributes=["sulfate free", "paraben free", "gluten free"])
    r = get_reward(s, goal, price=34.0, options={})
    assert r.num_attr_matches == 2 and r.reward == pytest.approx(0.75)


def test_attribute_found_in_text_not_in_list(products):
    d = products["B08ZRR3DZT"]                          # "pull on closure" is only in a bullet point
    goal = goal_for(d, attributes=["pull on closure"], price_upper=30.0)
    assert get_reward(d, goal, price=25.0, options={}).reward == 1.0


def test_options(products):
    d = products["B08ZRR3DZT"]
    goal = goal_for(d, goal_options={"color": "black", "size": "small"}, price_upper=30.0)   # 2 attrs + 2 opts + price
    assert get_reward(d, goal, 25.0, {"size": "small", "color": "black"}).reward == 1.0
    r = get_reward(d, goal, 25.0, {"size": "medium", "color": "black"})
    assert r.num_option_matches == 1 and r.reward == pytest.approx(4 / 5)
    r = get_reward(d, goal, 25.0, {})                   # nothing chosen, over budget too: 2 / 5
    assert get_reward(d, goal, 31.0, {}).reward == pytest.approx(2 / 5) and r.reward == pytest.approx(3 / 5)
    # WebShop passes dict goal options as (name, value) pairs: ("size", "x-large") reads "size x large", and
    # "large" is a token subset of it, so buying "large" counts (a quirk of the original, reproduced)
    goal = goal_for(d, goal_options={"size": "x-large"}, price_upper=30.0)
    assert get_reward(d, goal, 25.0, {"size": "large"}).num_option_matches == 1
    # human goals give options as a plain list of strings: "medium" vs "small" does not match
    goal = goal_for(d, goal_options=["small"], price_upper=30.0)
    assert get_reward(d, goal, 25.0, {"size": "medium"}).reward == pytest.approx(3 / 4)


def test_wrong_type_scores_zero(products):
    s, table = products["B07B6DVG41"], products["B06Y3VLDFB"]
    r = get_reward(table, goal_for(s), price=34.0, options={})      # no shared nouns: r_type = 0
    assert r.title_score == 0 and r.r_type == 0 and r.reward == 0


def test_type_reward_thresholds(products):
    razor = products["B087TR48KK"]
    nouns = light_nouns
    base = {"query": "other", "product_category": "A › B › C"}
    # 1 of 6 goal nouns shared (0.17): no query/category match -> 0.5
    g = {**base, "name": "eyebrow lamp sofa pillow carpet bucket"}
    assert type_reward(razor, g, nouns) == {"r_type": 0.5, "query_match": False, "category_match": False,
                                            "title_score": pytest.approx(1 / 6)}
    g = {**base, "name": "eyebrow lamp sofa pillow carpet bucket mug kettle vase rake spoon"}    # 1/11 < 0.1
    assert type_reward(razor, g, nouns)["r_type"] == 0.1
    g = {**base, "query": razor["query"], "name": "eyebrow lamp sofa pillow carpet bucket"}     # query match
    assert type_reward(razor, g, nouns)["r_type"] == 1.0
    g = {"query": "x", "product_category": "Beauty & Personal Care › Shave & Hair Removal › Women's",
         "name": "eyebrow lamp sofa pillow carpet bucket"}                                      # 2 category levels
    assert type_reward(razor, g, nouns)["category_match"] and type_reward(razor, g, nouns)["r_type"] == 1.0


def test_token_set_ratio_and_colors():
    assert token_set_ratio("sulfate free", "free sulfate") == 100
    assert token_set_ratio("gluten free", "sulfate free") == 70
    assert token_set_ratio("", "x") == 0 and token_set_ratio("a", "") == 0
    assert token_set_ratio("Pack of 12!", "pack of 12") == 100
    assert normalize_color("black forest") == "black" and normalize_color("violet lavender") == "lavender"
    assert normalize_color(("color", "black")) == "black" and normalize_color(("size", "xl")) == ("size", "xl")


def test_noun_extractors():
    assert "shampoo" in light_nouns("Repair Shampoo (13.5 Fl Oz), Sulfate Free") and "free" not in light_nouns("free")
    assert make_noun_extractor("auto")("a red table")          # spaCy if a model is installed, else light
    with pytest.raises(ValueError, match="light"):
        make_noun_extractor("spacy:no_such_model_here")
    with pytest.raises(ValueError, match="Unknown"):
        make_noun_extractor("bogus")
