#!/usr/bin/python3
"""PyTorch side of the throughput benchmark (bench/bench_nn.c is the fixgrid side).

Each zoo model is built from the same models/*.desc file (bench/fgdesc.py) and
timed on random inputs: training = zero_grad, forward, cross-entropy, backward,
SGD-with-momentum step; inference = eval-mode forward under no_grad. Prints one
line per configuration in the format bench/run reads:

    RESULT side=torch model=lenet5 mode=train batch=64 threads=1 sps=12345.6

--count prints each model's parameter total instead (checks the zoo's
documented counts). Run with /usr/bin/python3 (Debian's torch).
"""
import argparse
import ctypes
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgdesc  # noqa: E402


def openblas_core():
    """The kernel OpenBLAS picked in this process (torch's dense layers use it)."""
    for path in open("/proc/self/maps").read().split():
        if "openblas" in path and path.endswith(".so") or ("libopenblas" in path):
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename.restype = ctypes.c_char_p
                return lib.openblas_get_corename().decode()
            except OSError:
                continue
    return "not loaded"


def timed(fn, seconds):
    """Run fn twice to warm up, then until `seconds` have passed (at least 3 times)."""
    fn()
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if n >= 3 and el >= seconds:
            return n, el


def bench(name, text, batch, mode, seconds, gen):
    net = fgdesc.DescNet(text, name)
    c, h, w = net.input_shape()
    x = torch.rand(batch, c, h, w, generator=gen)
    y = torch.randint(0, net.out_shape[0], (batch,), generator=gen)
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

    n, el = timed(step, seconds)
    return n * batch / el


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
            net = fgdesc.DescNet(t, m)
            n = sum(p.numel() for p in net.parameters())
            st = sum(b.numel() for k, b in net.named_buffers() if not k.endswith("num_batches_tracked"))
            print(f"{m} params={n} state={st} out={net.out_shape[0]}")
        return
    print(f"INFO side=torch torch={torch.__version__} threads={torch.get_num_threads()} "
          f"openblas_core={openblas_core()}", flush=True)
    for m, t in texts.items():
        for mode in a.modes.split(","):
            for b in (int(s) for s in a.batches.split(",")):
                sps = bench(m, t, b, mode, a.seconds, gen)
                print(f"RESULT side=torch model={m} mode={mode} batch={b} threads={a.threads} "
                      f"sps={sps:.1f}", flush=True)


if __name__ == "__main__":
    main()
