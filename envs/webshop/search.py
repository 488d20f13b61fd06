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

import time

import numpy as np

SEARCH_RETURN_N = 50
K1, B = 0.9, 0.4


def document_text(p: dict) -> str:
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in p.get("options", {}).items())
    bullets = p["BulletPoints"][0] if p["BulletPoints"] else ""
    return " ".join([p["Title"], p["Description"], bullets, option_text]).lower()


class SearchEngine:
    """A BM25 index over product documents; ``search(query)`` returns up to 50 ASINs, best first."""

    def __init__(self, products: list[dict]):
        import bm25s
        import Stemmer

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
