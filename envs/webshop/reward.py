"""WebShop's purchase reward (Yao et al. 2022, arXiv 2207.01206, Sec. 3.2).

    R = r_type * (|U_att ∩ Y_att| + |U_opt ∩ Y_opt| + 1[y_price <= u_price]) / (|U_att| + |U_opt| + 1)

U is the goal, Y the bought product. Matching follows WebShop's engine/goal.py:
- attributes: a goal attribute counts if some product attribute has fuzzy token-set ratio > 85,
  or if it appears verbatim in the title, the bullet points or the description;
- options: each goal option counts if some chosen option has token-set ratio > 85 after colour
  normalisation. Synthetic goals keep their options as a dict and WebShop passes ``dict.items()``,
  so each goal option is the pair (name, value): thefuzz turns the pair into the words
  "name value", and colour normalisation only fires when one of the two equals a colour word.
  We reproduce that (it makes option matching looser than it looks);
- r_type: 1 if the query or >= 2 category levels match or > 20% of the goal name's nouns are in
  the product name; 0.5 otherwise; 0.1 when the noun overlap is under 10%; 0 when it is zero.

The nouns come from a pluggable extractor: WebShop uses spaCy's en_core_web_lg; the light
default keeps content words (see ``light_nouns``), and ``make_noun_extractor("spacy")`` uses a
spaCy model when one is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable

PRICE_RANGE = [10.0 * i for i in range(1, 100)]

# web_agent_site/engine/normalize.py's colour words (order matters: the first hit wins)
COLOR_SET = [
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue", "blush",
    "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne", "charcoal", "cheetah",
    "chestnut", "chocolate", "christmas", "coffee", "cognac", "copper", "coral", "cranberry", "cream", "crystal",
    "dark", "denim", "eggplant", "elephant", "espresso", "fuchsia", "gold", "granite", "grape", "graphite",
    "grass", "gray", "green", "grey", "heather", "indigo", "ivory", "ivy", "khaki", "lavender", "lemon",
    "leopard", "light", "lilac", "lime", "magenta", "maroon", "mauve", "merlot", "midnight", "mint", "mocha",
    "multicolor", "mushroom", "mustard", "natural", "navy", "nude", "olive", "orange", "peach", "pewter", "pink",
    "plum", "purple", "rainbow", "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver",
    "skull", "slate", "steel", "stone", "stonewash", "sunflower", "tan", "taupe", "teal", "tiger", "turquoise",
    "violet", "walnut", "wheat", "white", "wine", "yellow",
]

# ------------------------------------------------------------------ fuzzy matching (thefuzz 0.19)
_NON_ALNUM = re.compile(r"(?ui)\W")


def full_process(s: object) -> str:
    """thefuzz's preprocessing: non-strings become str(s); keep ASCII; non-alphanumerics -> space; lower; strip."""
    s = s if isinstance(s, str) else str(s)
    s = s.encode("ascii", "ignore").decode()
    return _NON_ALNUM.sub(" ", s).lower().strip()


@lru_cache(maxsize=65536)
def _ratio(a: str, b: str) -> int:
    """Normalised Indel similarity (python-Levenshtein's ratio): 2 * LCS / (|a| + |b|), as a rounded percent."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return int(round(100 * 2 * prev[-1] / (len(a) + len(b))))


def token_set_ratio(s1: object, s2: object) -> int:
    """thefuzz.fuzz.token_set_ratio: compare the shared tokens with each side's full token set."""
    p1, p2 = full_process(s1), full_process(s2)
    if not p1 or not p2:
        return 0
    t1, t2 = set(p1.split()), set(p2.split())
    sect = " ".join(sorted(t1 & t2))
    c12 = (sect + " " + " ".join(sorted(t1 - t2))).strip()
    c21 = (sect + " " + " ".join(sorted(t2 - t1))).strip()
    return max(_ratio(sect, c12), _ratio(sect, c21), _ratio(c12, c21))


def normalize_color(option: object) -> object:
    """The first colour word "in" the option (substring for strings, membership for WebShop's pairs)."""
    for color in COLOR_SET:
        if color in option:   # str: substring; tuple (name, value): equality with one element
            return color
    return option


# ------------------------------------------------------------------ nouns for the type match
STOPWORDS = frozenset("""a an the and or of for with without in on at to by from as is are be this that these those
it its your you our we my me i he she they them his her their all any each every some no not only very more most
so than too can will just into onto over under up down out off per via about new set pack piece pcs count inch
inches oz ounce ounces lb lbs ml fl x s""".split())
ADJECTIVES = frozenset("""black white red blue green yellow pink purple grey gray brown orange beige gold silver navy
small large big little long short high low soft hard hot cold warm cool light dark heavy thin thick wide narrow
easy quick fast slow natural organic free premium best great good super extra ultra mini full half double single
new old classic modern vintage portable adjustable durable waterproof wireless electric digital automatic manual
cute sexy casual elegant comfortable stylish fashion decorative rustic pure fresh fine sensitive dry daily
women's men's womens mens kids unisex""".split())
_WORD = re.compile(r"[a-z][a-z0-9'&-]*")


def light_nouns(text: str) -> list[str]:
    """A spaCy-free stand-in for NOUN/PROPN tokens: lowercase words minus stopwords, numbers and common adjectives."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and w not in ADJECTIVES and len(w) > 1]


def make_noun_extractor(kind: str = "auto") -> Callable[[str], list[str]]:
    """"light", "spacy" / "spacy:<model>" (an installed spaCy model), or "auto" (spaCy if a model loads, else light)."""
    if kind == "light":
        return light_nouns
    if kind.startswith("spacy") or kind == "auto":
        names = [kind.split(":", 1)[1]] if ":" in kind else ["en_core_web_lg", "en_core_web_md", "en_core_web_sm"]
        for name in names:
            try:
                import spacy
                nlp = spacy.load(name, disable=["ner", "parser", "lemmatizer"])
            except Exception:
                continue
            return lambda text: [t.text.lower() for t in nlp(text) if t.pos_ in ("PNOUN", "NOUN", "PROPN")]
        if kind != "auto":
            raise ValueError(f"noun extractor {kind!r}: no spaCy model {names} could be loaded. Install one "
                             "(python -m spacy download en_core_web_lg) or use nouns='light'.")
        return light_nouns
    raise ValueError(f"Unknown noun extractor {kind!r}; use 'light', 'spacy', 'spacy:<model>' or 'auto'.")


# ------------------------------------------------------------------ the reward
@dataclass
class RewardInfo:
    """The reward's parts, as WebShop's verbose mode reports them."""

    reward: float
    r_type: float
    r_att: float
    r_option: float | None
    r_price: bool | None
    query_match: bool
    category_match: bool
    title_score: float
    num_attr_matches: int
    num_option_matches: int


def type_reward(product: dict, goal: dict, nouns: Callable[[str], list[str]]) -> dict:
    query_match = product["query"] == goal["query"]
    pcat = {x.strip() for x in product["product_category"].split("›")}
    gcat = {x.strip() for x in goal["product_category"].split("›")}
    category_match = len(pcat & gcat) >= 2
    bought, wanted = nouns(product["name"]), nouns(goal["name"])
    title_score = 0.2 if not wanted else len(set(bought) & set(wanted)) / len(wanted)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {"r_type": r_type, "query_match": query_match, "category_match": category_match,
            "title_score": title_score}


def attribute_matches(product: dict, goal_attrs: Iterable[str]) -> int:
    text = (product["Title"].lower(), " ".join(product["BulletPoints"]).lower(), product["Description"].lower())
    n = 0
    for g in goal_attrs:
        if any(token_set_ratio(p, g) > 85 for p in product["Attributes"]) or any(g in t for t in text):
            n += 1
    return n


def option_matches(chosen: Iterable[str], goal_options: dict | list) -> int:
    goal = list(goal_options.items()) if isinstance(goal_options, dict) else list(goal_options)
    chosen = [normalize_color(o) for o in chosen]
    return sum(any(token_set_ratio(p, normalize_color(g)) > 85 for p in chosen) for g in goal)


def get_reward(product: dict, goal: dict, price: float, options: dict,
               nouns: Callable[[str], list[str]] = light_nouns) -> RewardInfo:
    """Score buying ``product`` at ``price`` with the chosen ``options`` ({name: value}) against ``goal``."""
    t = type_reward(product, goal, nouns)
    r_price = (price <= goal["price_upper"]) if goal["price_upper"] > 0 else None
    n_att = attribute_matches(product, goal["attributes"])
    n_opt = option_matches(list(options.values()), goal["goal_options"])
    n_goal_opt = len(goal["goal_options"])
    total = (n_att + n_opt + bool(r_price)) / (len(goal["attributes"]) + n_goal_opt + 1)
    return RewardInfo(
        reward=total * t["r_type"], r_type=t["r_type"],
        r_att=n_att / len(goal["attributes"]) if goal["attributes"] else 0.0,
        r_option=n_opt / n_goal_opt if n_goal_opt else None, r_price=r_price,
        query_match=t["query_match"], category_match=t["category_match"], title_score=t["title_score"],
        num_attr_matches=n_att, num_option_matches=n_opt)
