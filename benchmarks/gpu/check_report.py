"""Checks a report of benchmarks/gpu/run.sh: every conformance case passed, every model was
timed on this side, and on PyTorch's side too when this machine's python3 has PyTorch.
Usage: python3 check_report.py report.json   (exit 0 when it holds, 1 with the reasons)"""
import json, math, sys
import importlib.util

r = json.load(open(sys.argv[1]))
problems = []
c = r.get("conformance")
if not c:
    problems.append("no conformance results")
elif c["failed"] != 0 or c["passed"] != c["total"] or c["total"] < 250:
    problems.append("conformance: %d of %d passed: %s" % (c["passed"], c["total"], c["failures"][:3]))
t = r.get("timing")
models = t.get("models", []) if t else []
if sorted(m["model"] for m in models) != ["mlp", "vgg11"]:
    problems.append("timed models: %s" % [m["model"] for m in models])
for m in models:
    for k in ("summary_ms", "sgd_step_ms"):
        v = m["ours"].get(k)
        if not (isinstance(v, float) and v > 0 and math.isfinite(v)):
            problems.append("%s: ours %s = %s" % (m["model"], k, v))
    if m["ours"]["reverse_passes"] != m["S"] + 1:
        problems.append("%s: %s reverse passes, expected 1 + S = %d" % (m["model"], m["ours"]["reverse_passes"], m["S"] + 1))
    if importlib.util.find_spec("torch") is not None:
        p = m.get("pytorch") or {}
        if not (p.get("summary_ms", 0) > 0 and p.get("reverse_passes") == 2 * m["S"] + 1):
            problems.append("%s: PyTorch side missing or wrong: %s (%s)" % (m["model"], p, t.get("pytorch_error")))
for p in problems:
    print("report check: " + p)
sys.exit(1 if problems else 0)
