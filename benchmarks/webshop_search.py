"""WebShop search: BM25 index build time and query latency against catalog size (1k / 10k / 100k
generated products), and env steps per second on each catalog.

    python benchmarks/webshop_search.py [--sizes 1000 10000 100000] [--queries 200]

Queries are the goals' own search candidates (instruction without price clause). Writes
benchmarks/results/webshop_search.json and .png. The 2 CPU cores were shared with other jobs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from agentgym.envs.webshop.catalog import clean_products, generate_raw_products, product_prices, synthetic_goals
from agentgym.envs.webshop.env import query_candidates
from agentgym.envs.webshop.search import SearchEngine
from common import RESULTS, write_result


def measure(n: int, queries: int) -> dict:
    t0 = time.perf_counter()
    raw, attributes = generate_raw_products(n, seed=0)
    products = clean_products(raw, attributes)
    gen_s = time.perf_counter() - t0
    goals = synthetic_goals(products, product_prices(products), seed=0)
    engine = SearchEngine(products)
    qs = [query_candidates(g["instruction_text"])[1] for g in goals[:queries]]
    lat, found = [], 0
    for q, g in zip(qs, goals):
        t = time.perf_counter()
        hits = engine.search(q)
        lat.append(time.perf_counter() - t)
        found += g["asin"] in hits
    lat_ms = sorted(1000 * x for x in lat)
    return {"products": n, "generate_s": round(gen_s, 2), "index_build_s": round(engine.build_seconds, 3),
            "query_ms_median": round(statistics.median(lat_ms), 3),
            "query_ms_p95": round(lat_ms[int(0.95 * (len(lat_ms) - 1))], 3),
            "goal_product_in_top50": round(found / len(qs), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    random.seed(0)
    rows = []
    for n in args.sizes:
        rows.append(measure(n, args.queries))
        print(rows[-1])
    write_result("webshop_search", {"rows": rows, "notes": "bm25s (k1=0.9, b=0.4, lucene variant, English "
                 "stopwords + Snowball stemmer) over WebShop's document text. Catalogs beyond 1,000 add "
                 "distractor variations of the 1,000 grounded products. Shared 2-core CPU machine."})
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    xs = [r["products"] for r in rows]
    ax[0].loglog(xs, [r["index_build_s"] for r in rows], "o-")
    ax[0].set(xlabel="products", ylabel="index build (s)", title="BM25 index build")
    ax[1].loglog(xs, [r["query_ms_median"] for r in rows], "o-", label="median")
    ax[1].loglog(xs, [r["query_ms_p95"] for r in rows], "s--", label="p95")
    ax[1].set(xlabel="products", ylabel="query latency (ms)", title="search latency")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "webshop_search.png", dpi=100)


if __name__ == "__main__":
    main()
