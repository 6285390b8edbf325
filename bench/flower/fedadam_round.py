"""One round of Flower's own FedAdam over a folder of agiNet deltas, timed.

    python fedadam_round.py --queue DIR --out RESULT.json [--global GLOBAL.safetensors]
        [--new-global OUT.safetensors] [--eta 0.1 --beta1 0.9 --beta2 0.99 --tau 1e-9]

DIR holds pairs `<sha>.delta` (a zstd frame around safetensors whose f32 data is stored as
byte planes, plus one metadata entry `aginet`, a JSON header with format "aginet-delta",
version 2) and `<sha>.report` (JSON; its
integer `tokens` becomes FitRes.num_examples). `--global` is a plain safetensors file with
the current global values of the same tensors; without it the global is zeros.

Each client model is global + delta (numpy f32, tensors sorted by name), wrapped the way
Flower's legacy strategy API expects: ndarrays_to_parameters, FitRes with Status OK and
num_examples, paired with a ClientProxy stand-in. `FedAdam.aggregate_fit(1, results, [])`
then runs with initial_parameters = the global. Times: load_s (read, decompress, build the
FitRes list), aggregate_s (aggregate_fit), total_s (both, plus building the strategy; the
optional --new-global write is excluded). peak_rss_bytes is ru_maxrss at the end; Flower's
API needs every FitRes in memory at once, so it grows by about delta_bytes_f32.

What FedAdam computes (flwr 1.42.0, flwr/server/strategy/fedadam.py, the legacy class:
present and not marked deprecated; flwr/serverapp/strategy/fedadam.py lines 163-170, the
Message-API version, uses the same formula):
  - l.145: FedAvg.aggregate_fit, i.e. the num_examples-weighted mean of the client models
    (aggregate_inplace, in f32 here).
  - l.154-157: delta_t = mean - current_weights (the global; so Flower sees the weighted
    mean delta, up to f32 rounding of (global + delta) - global).
  - l.159-173: m_t = beta_1*m + (1-beta_1)*delta_t, v_t = beta_2*v + (1-beta_2)*delta_t**2,
    with m, v starting at zeros.
  - l.179-183: bias correction IS applied, to the learning rate (Kingma & Ba's alpha_t form):
        eta_norm = eta * sqrt(1 - beta_2**(server_round + 1)) / (1 - beta_1**(server_round + 1))
    Note the exponent is server_round + 1: in round 1 it is t = 2, so with the defaults
    eta_norm = 0.1 * sqrt(1 - 0.99**2) / (1 - 0.9**2) = 0.1 * 0.74246 (textbook Adam at t=1
    would give 0.1 * 1.0).
  - l.185-188: new = current + eta_norm * m_t / (sqrt(v_t) + tau)   (tau outside the sqrt,
    v_t itself not bias-corrected).
  So in this single round the step per value is eta_norm * (1-b1)*d / ((1-b2)**0.5 * |d| + tau),
  about +-0.0742 * eta/0.1 wherever |d| >> tau. eta_norm is a numpy float64 scalar, so under
  NumPy 2 promotion the new weights come back float64; --new-global stores them as f32.
"""

import argparse
import json
import resource
import struct
import sys
import time
from pathlib import Path

import numpy as np
import zstandard
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import load_file, save_file

import flwr
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAdam

MAX_DECOMPRESSED = 1 << 30  # same guard as the Rust reader


def _unused(*_args, **_kwargs):
    raise NotImplementedError("benchmark stand-in: never talks to a client")


# aggregate_fit only carries the proxy along, so every abstract method is a stub.
BenchProxy = type(
    "BenchProxy", (ClientProxy,), {name: _unused for name in ClientProxy.__abstractmethods__}
)


def read_delta(path: Path, compressed: bytes, dctx) -> dict:
    """Decompresses and checks one delta; returns its f32 tensors by name."""
    raw = dctx.decompress(compressed, max_output_size=MAX_DECOMPRESSED)
    (header_len,) = struct.unpack("<Q", raw[:8])
    # Delta version 2 stores the f32 data as byte planes (docs/formats.md#delta): put them back.
    start = 8 + header_len
    planes = np.frombuffer(raw, dtype=np.uint8, offset=start)
    raw = raw[:start] + planes.reshape(4, -1).T.tobytes()
    metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__") or {}
    if "aginet" not in metadata:
        sys.exit(f"{path}: metadata entry 'aginet' is missing")
    header = json.loads(metadata["aginet"])
    if header.get("format") != "aginet-delta" or header.get("version") != 2:
        sys.exit(f"{path}: header format {header.get('format')!r} version "
                 f"{header.get('version')!r} is not 'aginet-delta' version 2")
    tensors = load_safetensors(raw)
    for name, t in tensors.items():
        if t.dtype != np.float32:
            sys.exit(f"{path}: tensor {name} has dtype {t.dtype}, expected float32")
    return tensors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queue", type=Path, required=True, help="folder of .delta/.report pairs")
    ap.add_argument("--out", type=Path, required=True, help="RESULT.json to write")
    ap.add_argument("--global", dest="global_path", type=Path, help="current global safetensors")
    ap.add_argument("--new-global", type=Path, help="write Flower's new global here")
    ap.add_argument("--eta", type=float, default=0.1)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--tau", type=float, default=1e-9)
    args = ap.parse_args()

    delta_paths = sorted(args.queue.glob("*.delta"))
    if not delta_paths:
        sys.exit(f"{args.queue}: no .delta files")

    t0 = time.perf_counter()
    dctx = zstandard.ZstdDecompressor()
    names, global_values = None, None
    results, bytes_compressed, bytes_f32 = [], 0, 0
    for path in delta_paths:
        compressed = path.read_bytes()
        report = json.loads(path.with_suffix(".report").read_text())
        delta = read_delta(path, compressed, dctx)
        if names is None:
            names = sorted(delta)
            if args.global_path:
                global_values = {
                    n: a.astype(np.float32, copy=False)
                    for n, a in load_file(args.global_path).items()
                }
                if sorted(global_values) != names:
                    sys.exit(f"{args.global_path}: tensor names differ from {path}'s")
            else:
                global_values = {n: np.zeros_like(delta[n]) for n in names}
        if sorted(delta) != names:
            sys.exit(f"{path}: tensor names differ from {delta_paths[0]}'s")
        for n in names:
            if delta[n].shape != global_values[n].shape:
                sys.exit(f"{path}: tensor {n} has shape {delta[n].shape}, "
                         f"global has {global_values[n].shape}")
        client = [global_values[n] + delta[n] for n in names]
        fit_res = FitRes(
            status=Status(code=Code.OK, message="Success"),
            parameters=ndarrays_to_parameters(client),
            num_examples=int(report["tokens"]),
            metrics={},
        )
        results.append((BenchProxy(cid=path.stem), fit_res))
        bytes_compressed += len(compressed)
        bytes_f32 += sum(a.nbytes for a in delta.values())
    load_s = time.perf_counter() - t0

    strategy = FedAdam(
        initial_parameters=ndarrays_to_parameters([global_values[n] for n in names]),
        fit_metrics_aggregation_fn=lambda _metrics: {},  # silences the round-1 warning
        eta=args.eta,
        beta_1=args.beta1,
        beta_2=args.beta2,
        tau=args.tau,
    )
    t1 = time.perf_counter()
    new_parameters, _ = strategy.aggregate_fit(1, results, [])
    aggregate_s = time.perf_counter() - t1
    total_s = time.perf_counter() - t0

    if args.new_global:
        new_values = parameters_to_ndarrays(new_parameters)
        save_file(
            {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in zip(names, new_values)},
            str(args.new_global),
        )

    result = {
        "flwr_version": flwr.__version__,
        "deltas": len(results),
        "delta_bytes_compressed": bytes_compressed,
        "delta_bytes_f32": bytes_f32,
        "load_s": round(load_s, 6),
        "aggregate_s": round(aggregate_s, 6),
        "total_s": round(total_s, 6),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"flwr {result['flwr_version']} FedAdam: {result['deltas']} deltas "
        f"({bytes_compressed / 1e6:.1f} MB zstd, {bytes_f32 / 1e6:.1f} MB f32), "
        f"load {load_s:.3f} s, aggregate {aggregate_s:.3f} s, total {total_s:.3f} s, "
        f"peak RSS {result['peak_rss_bytes'] / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
