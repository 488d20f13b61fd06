"""WebShop's pages as its ``text`` observation mode renders them: the visible strings of each
HTML page joined by " [SEP] " (web_agent_text_env.convert_html_to_text with simple=True).

The strings and their order follow WebShop's templates: the search page ("WebShop",
"Instruction:", the instruction, "Search"), results ("Back to Search", "Page 1 (Total results:
50)", "< Prev" / "Next >" when there is such a page, then ASIN, title and price per product,
10 per page), the item page (options by name, title, "Price: ...", "Rating: N.A.", the
Description / Features / Reviews buttons and "Buy Now"), the sub-pages and the done page with
"Your score (min 0.0, max 1.0)". One addition from WebShop's text_rich mode: the item page starts
with "You have clicked <option>." for each chosen option, since plain text cannot show a checked
radio button.
"""

from __future__ import annotations

import json

SEP = " [SEP] "
PRODUCT_WINDOW = 10
BACK_TO_SEARCH, PREV_PAGE, NEXT_PAGE, END_BUTTON = "Back to Search", "< Prev", "Next >", "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")


def search_page(instruction: str) -> list[str]:
    return ["WebShop", "Instruction:", instruction, "Search"]


def results_page(instruction: str, products: list[dict], page: int, total: int) -> list[str]:
    out = ["Instruction:", instruction, BACK_TO_SEARCH, f"Page {page} (Total results: {total})"]
    if page > 1:
        out.append(PREV_PAGE)
    if page * PRODUCT_WINDOW < total:
        out.append(NEXT_PAGE)
    for p in products:
        out += [p["asin"], p["Title"], p["Price"]]
    return out


def item_page(instruction: str, product: dict, chosen: dict[str, str]) -> list[str]:
    out = [f"You have clicked {v}." for v in chosen.values()]
    out += ["Instruction:", instruction, BACK_TO_SEARCH, PREV_PAGE]
    for name, values in product["options"].items():
        out += [name, *values]
    out += [product["Title"], f"Price: {product['Price']}", f"Rating: {product['Rating']}", *SUB_PAGES, END_BUTTON]
    return out


def sub_page(instruction: str, product: dict, which: str) -> list[str]:
    out = ["Instruction:", instruction, BACK_TO_SEARCH, PREV_PAGE]
    if which == "Description":
        out.append(product["Description"])
    elif which == "Features":
        out += list(product["BulletPoints"])
    else:
        for r in product["Reviews"]:
            out += [r.get("title", ""), str(r.get("score", "")), r.get("body", "")]
    return out


def done_page(asin: str, chosen: dict[str, str], reward: float) -> list[str]:
    return ["Thank you for shopping with us!", "Purchased", "asin", asin, "options", json.dumps(chosen),
            "Your score (min 0.0, max 1.0)", f"{reward:.4g}"]


def join(parts: list[str]) -> str:
    return SEP.join(s.strip() for s in parts if s is not None and s.strip())
