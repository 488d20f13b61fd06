"""WebShop's search engine: BM25 over the text WebShop indexes, with pyserini's defaults.

WebShop indexes each product as one lowercased document,
``Title + " " + Description + " " + BulletPoints[0] + " " + option text`` where the option text is
"name: v1, v2, and name2: ..." (search_engine/convert_product_file_format.py), and searches it with
pyserini's Lucene BM25 (k1=0.9, b=0.4), returning the top 50. Here bm25s does the BM25 ("lucene"
variant, same k1/b) with English stopwords and the Snowball English stemmer (Lucene's default
English analyzer uses Porter stemming: near, not identical, rankings). Only documents sharing a
term with the query are returned, as in Lucene.
"""

from __future__ import annotations

import sys
import time

import numpy as np

SEARCH_RETURN_N = 50
K1, B = 0.9, 0.4


def document_text(p: dict) -> str:
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in p.get("options", {}).items())
    bullets = p["BulletPoints"][0] if p["BulletPoints"] else ""
    return " ".join([p["Title"], p["Description"], bullets, option_text]).lower()


def import_bm25s():
    """bm25s, imported without JAX. On import bm25s runs a JAX top-k when JAX is installed, and that
    first JAX call takes 75% of the GPU's memory (JAX preallocates), starving the policy: a
    SmolLM2-sized model ran out of memory on an 80 GB H100. We score with numpy (get_scores), so
    JAX is hidden from that import unless the user already imported it."""
    if "bm25s" in sys.modules or "jax" in sys.modules:
        import bm25s
        return bm25s
    sys.modules["jax"] = None                                     # makes `import jax.lax` fail inside bm25s
    try:
        import bm25s
    finally:
        del sys.modules["jax"]
    return bm25s


class SearchEngine:
    """A BM25 index over product documents; ``search(query)`` returns up to 50 ASINs, best first."""

    def __init__(self, products: list[dict]):
        import Stemmer

        bm25s = import_bm25s()
        t0 = time.perf_counter()
        self._bm25s = bm25s
        self.stemmer = Stemmer.Stemmer("english")
        self.asins = [p["asin"] for p in products]
        tokens = bm25s.tokenize([document_text(p) for p in products], stopwords="en", stemmer=self.stemmer,
                                show_progress=False)
        self.index = bm25s.BM25(k1=K1, b=B, method="lucene")
        self.index.index(tokens, show_progress=False)
        self.vocab = self.index.vocab_dict
        self.build_seconds = time.perf_counter() - t0

    def query_tokens(self, query: str) -> list[str]:
        toks = self._bm25s.tokenize([query.lower()], stopwords="en", stemmer=self.stemmer, return_ids=False,
                                    show_progress=False)[0]
        return [t for t in toks if t in self.vocab]

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        tokens = self.query_tokens(query)
        if not tokens:
            return []
        scores = self.index.get_scores(tokens)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]      # score descending, then index order (stable ties)
        return [self.asins[i] for i in top if scores[i] > 0]
