"""WebShop's products and goals: the real files, or a synthetic catalog in exactly their schema.

Real data (``items_shuffle_*.json`` + ``items_ins_v2_*.json``, optionally ``items_human_ins.json``)
is cleaned the way WebShop's engine.load_products does (Title/Description/BulletPoints, price
tag, lowercased option values with "/" -> " | ", attributes, query lowercased). Goals follow
engine/goal.py: synthetic goals are every option combination of each product with an
instruction, with a price bound drawn from the next four multiples of $10 above its price;
human goals are the crowd-sourced instructions. WebShop shuffles the goal list with seed 233.

Only goal data for the 1,000-product set exists offline, so ``generate_raw_products`` writes
products in items_shuffle's schema grounded in items_ins_v2_1000.json (real ASINs, attributes,
instructions; the product type is read off the instruction). Names, descriptions, bullets,
options and prices are invented and every product carries ``"synthetic": true``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from agentgym.envs.webshop.reward import PRICE_RANGE

RESOURCES = Path(__file__).parent / "resources"
GROUNDING = RESOURCES / "items_ins_v2_1000.json"
CACHE = Path(os.environ.get("AGENTGYM_CACHE", Path.home() / ".cache" / "agentgym")) / "webshop"
GOAL_SHUFFLE_SEED = 233


def data_dir() -> Path | None:
    """Where the user keeps real WebShop files: $WEBSHOP_DATA, else ~/.cache/agentgym/webshop/data."""
    for d in (os.environ.get("WEBSHOP_DATA"), CACHE / "data"):
        if d and Path(d).is_dir():
            return Path(d)
    return None


# ------------------------------------------------------------------ cleaning (engine.load_products)
def clean_products(raw: list[dict], attributes: dict, human_ins: dict | None = None) -> list[dict]:
    """WebShop's product records from items_shuffle-style dicts (dedup by ASIN, price tag, options...)."""
    out, seen = [], set()
    for p in raw:
        asin = p["asin"]
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        q = dict(p)
        q["Title"] = p["name"]
        q["Description"] = p.get("full_description") or ""
        q["Reviews"], q["Rating"] = [], "N.A."
        small = p.get("small_description") or ""
        q["BulletPoints"] = small if isinstance(small, list) else [small]
        pricing = p.get("pricing")
        if not pricing:
            q["pricing"], q["Price"] = [100.0], "$100.0"
        else:
            values = [float(Decimal(re.sub(r"[^\d.]", "", v) or "0")) for v in pricing.split("$")[1:]]
            q["Price"] = f"${values[0]}" if len(values) == 1 else f"${values[0]} to ${values[1]}"
            q["pricing"] = values[:2]
        options = {}
        for name, contents in (p.get("customization_options") or {}).items():
            if contents is None:
                continue
            options[name.lower()] = [c["value"].strip().replace("/", " | ").lower() for c in contents]
        q["options"] = options
        att = attributes.get(asin, {})
        q["Attributes"] = att.get("attributes", ["DUMMY_ATTR"]) if "attributes" in att else ["DUMMY_ATTR"]
        q["instruction_text"] = att.get("instruction")
        q["instruction_attributes"] = att.get("instruction_attributes")
        if human_ins is not None and asin in human_ins:
            q["instructions"] = human_ins[asin]
        q["MainImage"] = (p.get("images") or [""])[0]
        q["query"] = p["query"].lower().strip()
        out.append(q)
    return out


def product_prices(products: list[dict], seed: int = 0) -> dict[str, float]:
    """engine.generate_product_prices: a fixed price per product; uniform within a price range (seeded)."""
    rng = random.Random(seed)
    prices = {}
    for p in products:
        pr = p["pricing"]
        prices[p["asin"]] = 100.0 if not pr else pr[0] if len(pr) == 1 else rng.uniform(*pr[:2])
    return prices


# ------------------------------------------------------------------ goals (engine/goal.py)
def _price_bound(rng: random.Random, price: float) -> tuple[float, str]:
    above = [p for p in PRICE_RANGE if p > price][:4]
    if len(above) >= 2:
        _, upper = sorted(rng.sample(above, 2))
        return upper, f", and price lower than {upper:.2f} dollars"
    return 1000000, ""


def synthetic_goals(products: list[dict], prices: dict[str, float], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    goals, counts = [], {}
    for p in products:
        if not p.get("instruction_text"):
            continue
        upper, price_text = _price_bound(rng, prices[p["asin"]])
        names = sorted(p["options"])
        for combo in itertools.product(*(p["options"][n] for n in names)):
            goal_options = dict(zip(names, combo))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            option_text = " with " + option_text if option_text else ""
            goals.append({"asin": p["asin"], "category": p["category"], "query": p["query"], "name": p["Title"],
                          "product_category": p["product_category"],
                          "instruction_text": f"{p['instruction_text']}{option_text}{price_text}",
                          "attributes": p["instruction_attributes"], "price_upper": upper,
                          "goal_options": goal_options})
            for a in p["instruction_attributes"]:
                counts[a] = counts.get(a, 0) + 1
    for g in goals:
        g["weight"] = sum(1.0 / counts[a] for a in g["attributes"]) / len(g["attributes"])
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return goals


def human_goals(products: list[dict], prices: dict[str, float], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    goals = []
    for p in products:
        for ins in p.get("instructions", []):
            if not ins["instruction_attributes"]:
                continue
            upper, price_text = _price_bound(rng, prices[p["asin"]])
            goals.append({"asin": p["asin"], "category": p["category"], "query": p["query"], "name": p["name"],
                          "product_category": p["product_category"],
                          "instruction_text": ins["instruction"].strip(".") + price_text,
                          "attributes": ins["instruction_attributes"], "price_upper": upper,
                          "goal_options": ins["instruction_options"], "weight": 1})
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return goals


# ------------------------------------------------------------------ the synthetic generator
_TYPE_HINTS = [  # words in a product type -> (category, department path) for the synthetic product_category
    (("shirt", "dress", "shoe", "boot", "sneaker", "jacket", "pant", "jean", "sock", "top", "hoodie", "sweater",
      "skirt", "short", "bra", "underwear", "sandal", "slipper", "coat", "tee", "legging", "clothing", "jewelry",
      "watch", "pump", "hat", "swimsuit", "jumpsuit", "romper", "blouse", "vest", "suit"),
     "fashion", "Clothing, Shoes & Jewelry"),
    (("hair", "skin", "makeup", "nail", "lip", "eye", "shave", "fragrance", "perfume", "body", "bath", "scrub",
      "deodorant", "shampoo", "conditioner", "brush", "oral", "tooth", "tongue", "container", "palette", "wig",
      "lotion", "cream", "mask", "beauty", "foot", "cleanser", "serum", "sunscreen"),
     "beauty", "Beauty & Personal Care"),
    (("snack", "coffee", "tea", "candy", "chocolate", "sauce", "spice", "food", "cookie", "chip", "nut", "jerky",
      "drink", "water", "juice", "grocery", "gourmet", "bar", "cheese", "meat", "seasoning", "salt", "cake",
      "party", "candle", "baking", "cereal", "fruit"),
     "grocery", "Grocery & Gourmet Food"),
    (("table", "chair", "sofa", "bed", "desk", "shelf", "cabinet", "lamp", "light", "rug", "curtain", "furniture",
      "stool", "ottoman", "mirror", "decor", "art", "pillow", "bench", "stand", "dresser", "storage", "mattress",
      "frame", "clock", "kitchen", "vanity", "wall"),
     "garden", "Home & Kitchen"),
    (("cable", "charger", "phone", "case", "speaker", "headphone", "camera", "tv", "remote", "computer", "laptop",
      "tablet", "mouse", "keyboard", "monitor", "router", "battery", "adapter", "screen", "audio", "video",
      "electronic", "projector", "microphone", "drive", "memory", "antenna", "earbud"),
     "electronics", "Electronics"),
]
_BRANDS = ("Aveno Lumi Korvo Pellar Quenti Rovan Sabeli Tarkin Ulmo Vexa Wendra Yarrow Zephra Brisk Calder Dunmore "
           "Elowen Fenwick Galen Harlow Ingram Jessop Kestrel Linden Merrow Norland Oakes Prentice Quill Ravel").split()
_COLORS = ["black", "white", "navy blue", "grey", "beige", "red", "pink", "green", "brown", "light blue", "purple",
           "gold", "silver", "khaki", "burgundy", "rose gold", "multicolor", "ivory"]
_CLOTHING_SIZES = ["x-small", "small", "medium", "large", "x-large", "xx-large", "3x-large"]
_SHOE_SIZES = ["6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "11"]
_FLAVORS = ["original", "vanilla", "chocolate", "strawberry", "sea salt", "honey", "mint", "lavender", "citrus",
            "unscented", "coconut", "peppermint"]
_PACKS = ["1 count (pack of 1)", "2 count (pack of 2)", "3 count (pack of 3)", "6 count (pack of 6)",
          "12 count (pack of 12)", "4 ounce (pack of 1)", "8 ounce (pack of 1)", "16 ounce (pack of 2)"]
_FILLER = ["Designed for everyday use", "Backed by a 30-day satisfaction guarantee", "Thoughtfully packaged as a gift",
           "Made to last with careful quality control", "Lightweight and easy to store", "Ships in recyclable packaging"]


def instruction_type(instruction: str, attributes: list[str]) -> str:
    """The product type in a synthetic instruction: "Find me <attrs> <type> [with <attrs>] [for <attrs>]"."""
    s = re.sub(r"^find me\s+", "", instruction.strip().rstrip("."), flags=re.I)
    changed = True
    while changed:                      # drop leading attributes ("easy carry, high quality ...")
        changed = False
        for a in sorted(attributes, key=len, reverse=True):
            if s.lower().startswith(a.lower()) and len(s) > len(a):
                s, changed = s[len(a):].lstrip(", "), True
    for kw in (" with ", " for "):      # cut the first tail that is made only of attributes
        for m in re.finditer(re.escape(kw), s):
            tail = re.split(r", | for | with ", s[m.end():])
            if tail and all(t.strip().lower() in {a.lower() for a in attributes} for t in tail):
                s = s[:m.start()]
                break
    return s.strip(" ,").lower() or "product"


def _department(ptype: str) -> tuple[str, str]:
    words = set(re.findall(r"[a-z]+", ptype))
    for hints, category, dept in _TYPE_HINTS:
        if any(w.rstrip("s") in hints or w in hints for w in words):
            return category, dept
    return "garden", "Home & Kitchen"


def _options_for(ptype: str, category: str, rng: random.Random) -> dict[str, list[dict]]:
    opts: dict[str, list[str]] = {}
    if category == "fashion":
        opts["Color"] = rng.sample(_COLORS, rng.randint(2, 5))
        sizes = _SHOE_SIZES if re.search(r"shoe|boot|sneaker|sandal|slipper|pump", ptype) else _CLOTHING_SIZES
        start = rng.randint(0, 2)
        opts["Size"] = sizes[start:start + rng.randint(2, 5)]
    elif category in ("beauty", "grocery"):
        if rng.random() < 0.6:
            opts["Scent" if category == "beauty" else "Flavor Name"] = rng.sample(_FLAVORS, rng.randint(2, 4))
        if rng.random() < 0.6:
            opts["Size"] = rng.sample(_PACKS, rng.randint(2, 3))
    else:
        if rng.random() < 0.7:
            opts["Color"] = rng.sample(_COLORS, rng.randint(2, 4))
        if rng.random() < 0.3:
            opts["Size"] = rng.sample(["small", "medium", "large", "24 inch", "36 inch", "48 inch"], 2)
    return {k: [{"value": v.title() if k == "Color" else v, "image": None} for v in vals] for k, vals in opts.items()}


def _title_case(s: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in s.split())


def _raw_product(asin: str, ptype: str, attrs: list[str], rng: random.Random, instruction: str | None) -> dict:
    category, dept = _department(ptype)
    brand = rng.choice(_BRANDS)
    shown = [a for a in attrs if rng.random() < 0.5]
    extras = ["", " - " + rng.choice(_COLORS).title()]
    if category in ("beauty", "grocery"):
        extras.append(", " + rng.choice(_PACKS).split(" (")[0].title())
    extra = rng.choice(extras)
    name = f"{brand} {_title_case(' '.join(shown[:2]))} {_title_case(ptype)}{extra}".replace("  ", " ").strip()
    rest = [a for a in attrs if a not in shown[:2]]
    bullets = [f"{_title_case(a)}: {rng.choice(_FILLER).lower()}." for a in rest[: max(1, len(rest) // 2)]]
    bullets += [rng.choice(_FILLER) + "."]
    desc_attrs = rest[len(bullets) - 1:]
    description = (f"{brand} {ptype} " + (f"with {', '.join(desc_attrs)}. " if desc_attrs else ". ")
                   + rng.choice(_FILLER) + ".")
    base = round(rng.lognormvariate(3.2, 0.9), 2)
    base = min(max(base, 3.0), 900.0)
    pricing = f"${base:.2f}" if rng.random() < 0.8 else f"${base:.2f}${base * rng.uniform(1.1, 1.6):.2f}"
    sub = _title_case(ptype.split(",")[0].split("&")[0].strip())
    return {"name": name, "full_description": description, "pricing": pricing, "images": [""],
            "product_category": f"{dept} › {_title_case(category)} › {sub}", "average_rating": "",
            "small_description": bullets, "customization_options": _options_for(ptype, category, rng),
            "asin": asin, "category": category, "query": _title_case(ptype), "synthetic": True,
            **({"instruction_source": instruction} if instruction else {})}


def generate_raw_products(n: int = 1000, seed: int = 0, grounding: Path = GROUNDING) -> tuple[list[dict], dict]:
    """``n`` synthetic products (items_shuffle schema) and their items_ins-style attribute file.

    The first 1,000 use the grounding file's real ASINs and attributes (the product type comes from
    the real instruction, or from the instruction product sharing most attributes); beyond that,
    products are variations of those templates with fresh fake ASINs ("S" + 9 hex digits) and no
    instruction, so bigger catalogs add distractors without adding goals.
    """
    ins = json.loads(Path(grounding).read_text())
    rng = random.Random(seed)
    asins = sorted(ins)
    types = {a: instruction_type(v["instruction"], v["instruction_attributes"])
             for a, v in ins.items() if v.get("instruction")}
    by_attr: dict[str, list[str]] = {}
    for a, t in types.items():
        for att in ins[a]["attributes"]:
            by_attr.setdefault(att, []).append(t)
    all_types = sorted(set(types.values()))
    raw, attributes = [], {}
    for i in range(n):
        src = asins[i % len(asins)]
        entry = ins[src]
        if i < len(asins):
            asin, instruction = src, entry.get("instruction")
        else:
            asin = "S" + hashlib.sha1(f"{seed}-{i}".encode()).hexdigest()[:9].upper()
            instruction = None
        if src in types:
            ptype = types[src]
        else:
            votes = [t for att in entry["attributes"] for t in by_attr.get(att, [])]
            ptype = max(sorted(set(votes)), key=votes.count) if votes else rng.choice(all_types)
        attrs = list(entry["attributes"])
        if i >= len(asins):            # a variation: drop some attributes, maybe borrow one
            attrs = [a for a in attrs if rng.random() < 0.6]
        raw.append(_raw_product(asin, ptype, attrs, rng, instruction))
        attributes[asin] = {"attributes": attrs}
        if instruction:
            attributes[asin].update(instruction=entry["instruction"],
                                    instruction_attributes=entry["instruction_attributes"])
    rng.shuffle(raw)
    return raw, attributes


# ------------------------------------------------------------------ catalogs
@dataclass
class Catalog:
    """Cleaned products, their fixed prices and the goal list (already shuffled as WebShop does)."""

    name: str
    products: list[dict]
    prices: dict[str, float]
    goals: list[dict]
    by_asin: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        self.by_asin = {p["asin"]: p for p in self.products}


def _synthetic_path(n: int, seed: int) -> Path:
    digest = hashlib.sha256(GROUNDING.read_bytes()).hexdigest()[:8]
    return CACHE / f"synthetic_{n}_seed{seed}_{digest}.json"


def synthetic_raw(n: int, seed: int = 0) -> tuple[list[dict], dict]:
    """Generated products, cached under ~/.cache/agentgym/webshop (generation is deterministic)."""
    path = _synthetic_path(n, seed)
    if path.is_file():
        try:
            blob = json.loads(path.read_text())
            return blob["products"], blob["attributes"]
        except (ValueError, KeyError):
            pass
    raw, attributes = generate_raw_products(n, seed)
    if n > 2000:                       # small catalogs regenerate faster than they load
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"synthetic": True, "products": raw, "attributes": attributes}))
        tmp.replace(path)
    return raw, attributes


@lru_cache(maxsize=8)
def load_catalog(source: str = "synthetic", num_products: int = 1000, goals: str = "synthetic",
                 data: str | None = None, seed: int = 0) -> Catalog:
    """``source``: "synthetic" (generated, offline) or "real" (items_shuffle_*.json from ``data``)."""
    if source == "synthetic":
        raw, attributes = synthetic_raw(num_products, seed)
        human = None
    elif source == "real":
        folder = Path(data) if data else data_dir()
        if folder is None:
            raise FileNotFoundError("WebShop real data: no folder given. Pass data=/path/to/webshop/data, set "
                                    "WEBSHOP_DATA, or run `agentgym data webshop download`.")
        shuffle = _first(folder, [f"items_shuffle_{num_products}.json", "items_shuffle.json"])
        ins = _first(folder, [f"items_ins_v2_{num_products}.json", "items_ins_v2.json"])
        raw = json.loads(shuffle.read_text())[:num_products]
        attributes = json.loads(ins.read_text())
        human = None
    else:
        raise ValueError(f"Unknown WebShop catalog source {source!r}; use 'synthetic' or 'real'.")
    if goals == "human":
        folder = Path(data) if data else data_dir()
        path = folder / "items_human_ins.json" if folder else None
        if path is None or not path.is_file():
            raise FileNotFoundError("WebShop human goals need items_human_ins.json (5.1 MB): run `agentgym data "
                                    "webshop download` or point WEBSHOP_DATA / data= at a folder holding it.")
        human = json.loads(path.read_text())
    elif goals != "synthetic":
        raise ValueError(f"Unknown WebShop goals {goals!r}; use 'synthetic' or 'human'.")
    products = clean_products(raw, attributes, human)
    prices = product_prices(products, seed)
    goal_list = human_goals(products, prices, seed) if goals == "human" else synthetic_goals(products, prices, seed)
    if not goal_list:
        raise ValueError(f"The WebShop catalog ({source}, {num_products}) has no {goals} goals.")
    return Catalog(f"{source}-{num_products}-{goals}", products, prices, goal_list)


def _first(folder: Path, names: list[str]) -> Path:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise FileNotFoundError(f"None of {names} in {folder}. Run `agentgym data webshop download --dest {folder}`.")
