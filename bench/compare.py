#!/usr/bin/env python3
"""Prints mii vs peers vs the physical floor from a folder of bench JSON files (stdlib only).

  python3 bench/compare.py RESULTS_DIR
Groups by model shape (the config directory) and scenario; for each figure prints every runner's
value, mii's floor, mii/floor and mii/peer ratios (as speedups: >1 means mii is faster).
"""
import glob
import json
import os
import sys

LOWER_IS_BETTER = {"time_to_first_token", "decode_step", "wall", "latency_p50", "latency_p90", "latency_p99",
                   "ttft_p50", "ttft_p99", "load_weights", "first_token", "process_start_to_first_token"}


def main(folder):
    docs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "*.json")))]
    by_model = {}
    for d in docs:
        by_model.setdefault(os.path.basename(d["model"].rstrip("/")), []).append(d)
    for model, ds in by_model.items():
        mii = [d for d in ds if d["runner"] == "mii"]
        peers = [d for d in ds if d["runner"] != "mii"]
        print(f"\n== {model}  (GPU: {ds[0].get('gpu')}, mii commit {mii[0].get('commit') if mii else '-'})")
        if mii and mii[0].get("roofline", {}).get("copy_bytes_per_s"):
            r = mii[0]["roofline"]
            print(f"   roofline: copy {r['copy_bytes_per_s'] / 1e12:.2f} TB/s, bf16 GEMM {r['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s")
        head = f"{'scenario':11} {'figure':26} {'mii':>11} {'floor':>11} {'floor/mii':>9}"
        for p in peers:
            head += f" {p['runner']:>22} {'mii vs it':>9}"
        print(head)
        for d in mii:
            for r in d["results"]:
                # The load scenario repeats its figures per client count, the grid per (prompt, output): say which.
                cfg = r.get("config", {})
                if r["scenario"] == "grid":
                    label = f"grid {cfg.get('prompt')}/{cfg.get('gen')}"
                elif "clients" in cfg:
                    label = f"load c={cfg['clients']}"
                else:
                    label = r["scenario"]
                for name, f in r["figures"].items():
                    v, fl = f["value"], f.get("floor", 0)
                    low = name in LOWER_IS_BETTER
                    floor = f"{fl:11.2f} {(fl / v if low else v / fl):9.2f}" if fl and v else f"{'-':>11} {'-':>9}"
                    line = f"{label:11} {name:26} {v:11.2f} {floor}"
                    for p in peers:
                        pv = next((pr["figures"][name]["value"] for pr in p["results"]
                                   if pr["scenario"] == r["scenario"] and name in pr["figures"]), None)
                        if pv:
                            speed = pv / v if low else v / pv
                            line += f" {pv:22.2f} {speed:8.2f}x"
                        else:
                            line += f" {'-':>22} {'':>9}"
                    print(line)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
