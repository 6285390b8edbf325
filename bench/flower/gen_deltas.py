"""Writes random deltas in agiNet's format, for testing fedadam_round.py.

    python gen_deltas.py --out DIR [--count 20] [--layers 18] [--rank 8] [--level 19]
        [--seed 0] [--global GLOBAL.safetensors]

Each delta is `<sha256>.delta` (zstd frame, level 19 like the Rust writer, around
safetensors with f32 `<site>.lora_a` (rank x in) and `<site>.lora_b` (out x rank) and an
`aginet` header) plus `<sha256>.report` (JSON with a random `tokens`). The sites mimic a
Gemma-3-270m adapter with A trained: 18 blocks x 7 sites x 2 factors = 252 tensors,
1,898,496 values (7.6 MB of f32) at rank 8. Values are N(0, 1e-3): random f32 barely
compresses, so the zstd sizes are an upper bound. `--global` also writes a random global
(plain safetensors, same names) for fedadam_round.py's --global.
"""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import zstandard
from safetensors.numpy import save, save_file

SITES = {  # GGUF site: (out, in)
    "attn_q": (1024, 640),
    "attn_k": (256, 640),
    "attn_v": (256, 640),
    "attn_output": (640, 1024),
    "ffn_gate": (2048, 640),
    "ffn_up": (2048, 640),
    "ffn_down": (640, 2048),
}


def shapes(layers: int, rank: int) -> dict:
    out = {}
    for b in range(layers):
        for site, (n_out, n_in) in SITES.items():
            out[f"blk.{b}.{site}.lora_a"] = (rank, n_in)
            out[f"blk.{b}.{site}.lora_b"] = (n_out, rank)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--layers", type=int, default=18)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--level", type=int, default=19, help="zstd level")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--global", dest="global_path", type=Path)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    want = shapes(args.layers, args.rank)
    header = json.dumps({
        "format": "aginet-delta", "version": 1, "skill": "bench", "base_sha256": "0" * 64,
        "adapter_version": 0,
        "lora": {"targets": list(SITES), "rank": args.rank, "alpha": 2.0 * args.rank,
                 "train_a": True},
        "steps": 50,
    })
    cctx = zstandard.ZstdCompressor(level=args.level)
    args.out.mkdir(parents=True, exist_ok=True)
    for _ in range(args.count):
        tensors = {n: rng.normal(0, 1e-3, s).astype(np.float32) for n, s in want.items()}
        compressed = cctx.compress(save(tensors, metadata={"aginet": header}))
        sha = hashlib.sha256(compressed).hexdigest()
        (args.out / f"{sha}.delta").write_bytes(compressed)
        report = {
            "format": "aginet-report", "version": 1, "skill": "bench", "delta_sha256": sha,
            "base_sha256": "0" * 64, "adapter_version": 0, "reward_kind": "token_likelihood",
            "reward_before": 0.5, "reward_after": 0.55, "loss_curve": [], "steps": 50,
            "tokens": int(rng.integers(1_000, 20_000)), "wall_time_s": 0.0,
            "app_version": "gen_deltas", "threads": 1, "platform": "x86_64-linux",
        }
        (args.out / f"{sha}.report").write_text(json.dumps(report, indent=2) + "\n")
    if args.global_path:
        save_file({n: rng.normal(0, 1e-2, s).astype(np.float32) for n, s in want.items()},
                  str(args.global_path))
    values = sum(r * c for r, c in want.values())
    print(f"{args.count} deltas of {len(want)} tensors, {values} f32 values each, in {args.out}")


if __name__ == "__main__":
    main()
