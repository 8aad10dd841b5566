#!/usr/bin/python3
"""PyTorch side of the throughput benchmark (bench/bench_nn.c is the fixgrid side).

Each zoo model is built from the same models/*.desc file (tests/fixtures/fgdesc.py, the parity fixtures' builder) and
timed on random inputs: training = zero_grad, forward, cross-entropy, backward,
SGD-with-momentum step; inference = eval-mode forward under no_grad. Prints one
line per configuration in the format bench/run reads:

    RESULT side=torch model=lenet5 mode=train batch=64 threads=1 sps=12345.6 cpu_sps=13000.0

(sps per wall-clock second, cpu_sps per CPU second of this process.)

--count prints each model's parameter total instead (checks the zoo's
documented counts). --profile times each node alone, forward and backward,
in the LAYER format of bench_nn --profile, so the two can be compared node
by node. Run with /usr/bin/python3 (Debian's torch).
"""
import argparse
import ctypes
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import fgdesc  # noqa: E402


def openblas_core():
    """The kernel OpenBLAS picked in this process (torch's dense layers use it)."""
    for path in open("/proc/self/maps").read().split():
        if "libopenblas" in path:
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename.restype = ctypes.c_char_p
                return lib.openblas_get_corename().decode()
            except OSError:
                continue
    return "not loaded"


def timed(fn, seconds):
    """Run fn once to warm up, then until `seconds` have passed (at least 2
    times, as bench_nn). Returns (runs, wall seconds, process CPU seconds)."""
    fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if n >= 2 and el >= seconds:
            return n, el, time.process_time() - c0


def bench(name, text, batch, mode, seconds, gen):
    net = fgdesc.build_model(text, name)
    c, h, w = net.shapes[0]
    x = torch.rand(batch, c, h, w, generator=gen)
    y = torch.randint(0, net.shapes[-1][0], (batch,), generator=gen)
    if mode == "train":
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=False)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()

    else:
        net.eval()

        def step():
            with torch.no_grad():
                net(x)

    n, el, cpu = timed(step, seconds)
    return n * batch / el, n * batch / cpu


def node_line(nd):
    """The description line that rebuilds node nd alone, or None (as bench_nn.c)."""
    a, kind = nd["args"], nd["kind"]
    if kind in ("conv", "dense", "maxpool", "avgpool", "bn", "relu", "gap"):
        return kind + "".join(f" {k}={v}" for k, v in a.items())
    return None


def timed_mean(fn, seconds):
    """CPU seconds per call of fn (see bench_nn.c's cpu_now for why CPU time)."""
    fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        if n >= 3 and time.perf_counter() - t0 >= seconds:
            return (time.process_time() - c0) / n


def profile(name, text, batch, seconds, gen):
    full = fgdesc.build_model(text, name)
    for i, nd in enumerate(full.nodes[1:], 1):
        line = node_line(nd)
        if line is None:
            continue
        c, h, w = full.shapes[nd["in"][0]]
        net = fgdesc.build_model(f"input c={c} h={h} w={w}\n{line}\n", "profile")
        net.train()
        x = torch.rand(batch, c, h, w, generator=gen) - 0.5
        x.requires_grad_(True)  # as bench_nn, which computes the input gradient
        out = net(x)
        g = torch.rand(out.shape, generator=gen) - 0.5

        def fwd():
            with torch.no_grad():
                net(x)

        def fwd_bwd():
            net.zero_grad(set_to_none=False)
            x.grad = None
            net(x).backward(g)

        tf = timed_mean(fwd, seconds / 4)
        tfb = timed_mean(fwd_bwd, seconds / 4)
        oc, oh, ow = full.shapes[i]
        print(f"LAYER side=torch model={name} node={nd['name']} kind={nd['kind']} "
              f"in={c}x{h}x{w} out={oc}x{oh}x{ow} batch={batch} fwd_us={tf * 1e6:.1f} "
              f"bwd_us={max(tfb - tf, 0) * 1e6:.1f}", flush=True)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,lenet5,vgg-small,resnet-small")
    ap.add_argument("--models-dir", default=os.path.join(here, "..", "models"))
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--modes", default="train,infer")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0.5, help="time per configuration")
    ap.add_argument("--count", action="store_true", help="print parameter totals and exit")
    ap.add_argument("--profile", action="store_true", help="time each node alone")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(1)
    texts = {}
    for m in a.models.split(","):
        path = os.path.join(a.models_dir, m + ".desc")
        if not os.path.exists(path):
            sys.exit(f"bench_torch: unknown model '{m}' (no {path})")
        texts[m] = open(path).read()
    if a.count:
        for m, t in texts.items():
            net = fgdesc.build_model(t, m)
            n = sum(p.numel() for p in net.parameters())
            st = sum(b.numel() for k, b in net.named_buffers() if not k.endswith("num_batches_tracked"))
            print(f"{m} params={n} state={st} out={net.shapes[-1][0]}")
        return
    print(f"INFO side=torch torch={torch.__version__} threads={torch.get_num_threads()} "
          f"openblas_core={openblas_core()}", flush=True)
    if a.profile:
        for m, t in texts.items():
            for b in (int(s) for s in a.batches.split(",")):
                profile(m, t, b, a.seconds, gen)
        return
    for m, t in texts.items():
        for mode in a.modes.split(","):
            for b in (int(s) for s in a.batches.split(",")):
                sps, cpu_sps = bench(m, t, b, mode, a.seconds, gen)
                print(f"RESULT side=torch model={m} mode={mode} batch={b} threads={a.threads} "
                      f"sps={sps:.1f} cpu_sps={cpu_sps:.1f}", flush=True)


if __name__ == "__main__":
    main()
