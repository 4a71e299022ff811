"""Compares a gradients file written by `minimax gradients` with a reference (e.g. the fixture's
seq100_grads.safetensors): relative error ||a - b|| / ||b|| per tensor, the worst, and the loss metadata.
Pure Python (no numpy), for small models.
usage: python3 tools/compare_gradients.py OURS.safetensors REFERENCE.safetensors [--bound 1e-2]"""
import argparse, array, json, math, struct, sys

def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "F32":
            values = array.array("f", raw)
        elif t["dtype"] == "BF16":
            values = array.array("f", b"".join(b"\0\0" + raw[i:i + 2] for i in range(0, len(raw), 2)))
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {t['dtype']}; expected F32 or BF16")
        tensors[name] = (tuple(t["shape"]), values)
    return tensors, meta

p = argparse.ArgumentParser()
p.add_argument("ours"); p.add_argument("reference"); p.add_argument("--bound", type=float, default=1e-2)
args = p.parse_args()
ours, meta = read(args.ours)
ref, _ = read(args.reference)
missing = [n for n in ref if n not in ours]
worst, worst_name = 0.0, ""
for name, (shape, r) in ref.items():
    if name not in ours: continue
    oshape, o = ours[name]
    if oshape != shape:
        print(f"{name}: shape {oshape} vs reference {shape}"); worst = math.inf; continue
    num = math.fsum((x - y) ** 2 for x, y in zip(o, r)); den = math.fsum(y * y for y in r)
    err = math.sqrt(num / den) if den > 0 else (0.0 if num == 0 else math.inf)
    if err > worst: worst, worst_name = err, name
ok = worst <= args.bound and not missing
print(f"loss (ours) {meta.get('loss')}; {len(ref)} reference tensors, {len(missing)} missing in ours")
print(f"worst relative error {worst:.3e} ({worst_name}); bound {args.bound:g}: {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
