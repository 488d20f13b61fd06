"""``agentgym data webshop ...``: fetch and check WebShop's real files, or generate a synthetic catalog.

    agentgym data webshop download [--dest DIR]     fetch the real files (WebShop's Google Drive links) + sha256
    agentgym data webshop check [--dest DIR]        verify the files in DIR against the known sha256
    agentgym data webshop generate --num-products N --out DIR   write items_shuffle_N.json + items_ins_v2_N.json
                                                    (synthetic, WebShop's schema, every product marked synthetic)

DIR defaults to $WEBSHOP_DATA or ~/.cache/agentgym/webshop/data, where the env looks for them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import urllib.request
from pathlib import Path

from agentgym.envs.webshop.catalog import CACHE, generate_raw_products

# name -> (sha256, Google Drive id from WebShop's setup.sh)
FILES = {
    "items_shuffle_1000.json": ("30a4765c3a327af72d9a9a95a6b2486d516f0fa1d3ecd83681901ce82a21b269",
                                "1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib"),
    "items_ins_v2_1000.json": ("f88a36314a397b53b3d9c3fa5878e5f7b26d35019a51ec83fbedeca61a948f6f",
                               "1IduG0xl544V_A_jv3tHXC0kyFi7PnyBu"),
    "items_human_ins.json": ("cf78667548a71786e1d9049c24b802e48e1084ad4bb021cae56ce1f6d96954a3",
                             "14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O"),
}


def default_dest() -> Path:
    return Path(os.environ.get("WEBSHOP_DATA") or CACHE / "data")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(dest: Path) -> dict[str, str]:
    """File -> "ok" / "missing" / "sha256 mismatch"."""
    out = {}
    for name, (digest, _) in FILES.items():
        p = dest / name
        out[name] = "missing" if not p.is_file() else "ok" if sha256(p) == digest else "sha256 mismatch"
    return out


def download(dest: Path, url_template: str) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, (digest, drive_id) in FILES.items():
        path = dest / name
        if path.is_file() and sha256(path) == digest:
            print(f"{name}: already there (sha256 ok)")
            continue
        url = url_template.format(id=drive_id, name=name)
        tmp = path.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                f.write(r.read())
        except OSError as e:
            print(f"{name}: download failed ({e}). Fetch it yourself from {url} into {dest}.")
            failed += 1
            continue
        if sha256(tmp) != digest:
            print(f"{name}: sha256 mismatch for {url}; not kept. Expected {digest}.")
            tmp.unlink()
            failed += 1
            continue
        tmp.replace(path)
        print(f"{name}: ok")
    return 1 if failed else 0


def generate(num_products: int, out: Path, seed: int) -> int:
    raw, attributes = generate_raw_products(num_products, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"items_shuffle_{num_products}.json").write_text(json.dumps(raw))
    (out / f"items_ins_v2_{num_products}.json").write_text(json.dumps(attributes))
    print(f"wrote {num_products} synthetic products (marked \"synthetic\": true) to {out}")
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="agentgym data webshop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="fetch the real files and check their sha256")
    d.add_argument("--dest", type=Path, default=None)
    d.add_argument("--url", default="https://drive.google.com/uc?export=download&id={id}",
                   help="URL template with {id} (Drive id) or {name} (file name), e.g. a mirror")
    c = sub.add_parser("check", help="verify the real files' sha256")
    c.add_argument("--dest", type=Path, default=None)
    g = sub.add_parser("generate", help="write a synthetic catalog in WebShop's schema")
    g.add_argument("--num-products", type=int, default=1000)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.cmd == "generate":
        if args.num_products < 1:
            p.error("--num-products must be at least 1")
        return generate(args.num_products, args.out, args.seed)
    dest = args.dest or default_dest()
    if args.cmd == "download":
        return download(dest, args.url)
    status = check(dest)
    for name, s in status.items():
        print(f"{name}: {s}")
    return 0 if all(s == "ok" for s in status.values()) else 1
