"""California, the perf fit section's split: the default with search_width=0.5 (tabnas only)."""
import json, os, time, torch
from benchmarks.datasets import load_local
from benchmarks.protocol import prepare
from benchmarks.perf import _fit_adapter
data = prepare(load_local("california_housing", None), seed=0)
out = _fit_adapter(data, "tabnas", {"preset": "medium", "search_width": 0.5, "device": "cpu"})
out["load_avg"] = os.getloadavg()
json.dump(out, open("/work/out/half_fit.json", "w"), indent=1, default=str)
print(out["fit_s"], out["test"], out["info"]["timings"])
