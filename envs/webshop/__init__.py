"""WebShop: the text shop (search, results, item pages, reward) reimplemented on its real data format.

``WebShop-v0`` (the family default) runs offline on a synthetic 1,000-product catalog grounded in
WebShop's items_ins_v2_1000.json. Ids on the real files are registered only where those files are
found ($WEBSHOP_DATA or ~/.cache/agentgym/webshop/data; `agentgym data webshop download` fetches them);
the same envs are always reachable as ``agentgym.make("WebShop-v0", source="real", goals="human", data=...)``.
"""

import os
from pathlib import Path

from agentgym.registry import register

_ENTRY = "agentgym.envs.webshop.env:WebShopEnv"
_DATA = next((Path(d) for d in (os.environ.get("WEBSHOP_DATA"), Path.home() / ".cache/agentgym/webshop/data")
              if d and Path(d).is_dir()), None)

register(id="WebShop-v0", entry_point=_ENTRY, family="webshop", max_turns=15,
         description="WebShop on a synthetic 1,000-product catalog (real ASINs/attributes/instructions), synthetic goals.",
         source="synthetic", num_products=1000, goals="synthetic")
register(id="WebShop-10k-v0", entry_point=_ENTRY, family="webshop", max_turns=15,
         description="WebShop with 10,000 synthetic products (9,000 distractors), the same goals as WebShop-v0.",
         source="synthetic", num_products=10000, goals="synthetic")
if _DATA is not None and (_DATA / "items_shuffle_1000.json").is_file():
    register(id="WebShop-Real-v0", entry_point=_ENTRY, family="webshop", max_turns=15,
             description="WebShop's real 1,000-product catalog with its synthetic goals.",
             source="real", num_products=1000, goals="synthetic", data=str(_DATA))
    if (_DATA / "items_human_ins.json").is_file():
        register(id="WebShop-Human-v0", entry_point=_ENTRY, family="webshop", max_turns=15,
                 description="WebShop's real 1,000-product catalog with the crowd-sourced human goals.",
                 source="real", num_products=1000, goals="human", data=str(_DATA))
