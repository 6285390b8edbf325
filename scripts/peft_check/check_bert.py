#!/usr/bin/env python3
"""Checks that PEFT, loading agiNet's exported memory-skill adapter onto the Hugging Face
all-MiniLM-L6-v2 it was converted from, computes the sentence embedding agiNet recorded in the
export's reference.json (mean pooling over the tokens, L2 normalisation, as
sentence-transformers does).

agiNet's base is the Q8_0 conversion, this one the f32 original, so they agree to the
quantization's error, not to rounding: the tolerance is a cosine and a largest difference per
coordinate (the base alone, without an adapter, is within cosine 0.99985 and 4.1e-3; see
server/tests/rounds/memory.rs). Exit status 0 when the adapted embedding matches, 1 otherwise.
"""

import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--adapter", required=True, help="snapshot adapters/memory/vN folder")
    ap.add_argument("--model", required=True, help="models/minilm/model (fetch.sh)")
    ap.add_argument("--min-cosine", type=float, default=0.9995)
    ap.add_argument("--max-diff", type=float, default=6e-3)
    args = ap.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModel

    with open(f"{args.adapter}/reference.json") as f:
        reference = json.load(f)
    base = AutoModel.from_pretrained(args.model, local_files_only=True).float().eval()
    model = PeftModel.from_pretrained(base, args.adapter).eval()
    ids = torch.tensor([reference["tokens"]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    got = torch.nn.functional.normalize(hidden.mean(1), p=2, dim=1)[0]
    want = torch.tensor(reference["embedding"])
    cosine = float(got @ want)
    diff = float((got - want).abs().max())
    print(f"adapted embedding: cosine {cosine:.6f}, largest difference {diff:.2e}")
    # The adapter must matter: with it disabled the embedding moves away from the reference.
    with model.disable_adapter(), torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).last_hidden_state
    bare = torch.nn.functional.normalize(plain.mean(1), p=2, dim=1)[0]
    print(f"without the adapter: cosine {float(bare @ want):.6f}")
    ok = cosine >= args.min_cosine and diff <= args.max_diff
    print("ok" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
