#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses, from the tests' fixtures.

    tests/fuzz/seeds.py OUTDIR      writes OUTDIR/<harness>/<seed files>

Text readers get the repository's own files (experiments, subjects, model
descriptions); binary readers get small files generated here in the formats
the unit tests write (IDX, CIFAR-10, safetensors, the ledger with its
checksums), each framed as its harness reads it (see tests/fuzz/fuzz.h:
two-file readers take a 2-byte little-endian length of the first part).
Only the standard library: it runs wherever the harnesses build.
"""
import glob
import gzip
import json
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def put(out, harness, name, data):
    d = os.path.join(out, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def two(a, b):
    return struct.pack("<H", len(a)) + a + b


def idx_images(n, h, w):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes((i * 37) % 256 for i in range(n * h * w))


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def fg_hash64(b):
    """util's fg_hash64: FNV-1a 64 with a final avalanche (as tests/mpi/check.py)."""
    m = 0xFFFFFFFFFFFFFFFF
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & m
    h = ((h ^ (h >> 33)) * 0xFF51AFD7ED558CCD) & m
    h = ((h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53) & m
    return h ^ (h >> 33)


def ledger_line(rec):
    return "%s\tcrc=%016x\n" % (rec, fg_hash64(rec.encode()))


def safetensors(tensors, meta):
    """tensors: [(name, shape, floats)] -> bytes (F32, in order)."""
    header, data = {}, b""
    for name, shape, vals in tensors:
        blob = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if meta is not None:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    out = sys.argv[1]
    # experiment YAML: the fixtures (good and bad) and the shipped experiments
    for p in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/experiments/*.yaml")) +
                    glob.glob(os.path.join(ROOT, "experiments/*.yaml"))):
        put(out, "experiment", os.path.basename(p), open(p, "rb").read())
    # subject YAML: the shipped subjects, renamed to the harness's stem
    for p in sorted(glob.glob(os.path.join(ROOT, "experiments/subjects/*.yaml"))):
        text = re.sub(r"(?m)^name:.*$", "name: fuzz", open(p).read())
        put(out, "subject", os.path.basename(p), text)
    # model descriptions: the zoo and the test extras
    for p in sorted(glob.glob(os.path.join(ROOT, "models/*.desc")) +
                    [os.path.join(ROOT, "tests/fixtures/extras.desc")]):
        put(out, "desc", os.path.basename(p), open(p, "rb").read())
    put(out, "desc", "oneline.desc", "input c=1 h=4 w=4; conv out=2 k=3 p=1; bn; relu; maxpool k=2; "
        "flatten; dropout p=0.5; dense out=3\n")
    put(out, "desc", "residual.desc", "input c=2 h=4 w=4\nconv name=a out=2 k=3 p=1\nrelu name=r\n"
        "add in=r,a\navgpool k=2\ngap\ndense out=2 bias=0\n")
    # IDX: a consistent pair, a count mismatch, a truncated image file
    ok = (idx_images(3, 4, 4), idx_labels([0, 2, 1]))
    pairs = {"ok": ok, "mismatch": (ok[0], idx_labels([0, 1])), "truncated": (ok[0][:-5], ok[1]),
             "empty": (idx_images(0, 28, 28), idx_labels([])),
             "bigdims": (struct.pack(">IIII", 0x803, 1, 65536, 65536), ok[1][:9])}
    for name, (a, b) in pairs.items():
        put(out, "idx", name, two(a, b))
        put(out, "idx_gz", name, two(gzip.compress(a, mtime=0), gzip.compress(b, mtime=0)))
    put(out, "idx_gz", "cut", two(gzip.compress(ok[0], mtime=0)[:-6], gzip.compress(ok[1], mtime=0)))
    # CIFAR-10: two batches (2 and 1 records), a bad label, a torn record
    rec = lambda lab: bytes([lab]) + bytes((i * 7) % 256 for i in range(3072))
    put(out, "cifar", "ok", two(rec(3) + rec(9), rec(0)))
    put(out, "cifar", "badlabel", two(rec(10), rec(1)))
    put(out, "cifar", "torn", two(rec(1)[:-1], rec(2)))
    # CSV: mode byte 0 = integer label column y, 1 = the income spec
    put(out, "csv", "int", b"\x00x1,x2,y\n1.5,2,0\n-3,4e2,1\n0,0,2\n")
    put(out, "csv", "quoted", b"\x00\"x\",\"y\"\n\"1,5\",0\n2,1\r\n,1\n")
    put(out, "csv", "income", b"\x01age,workclass,fnlwgt,race,sex,income\n"
        b"39,State-gov,77516,White,Male,<=50K\n50,\"Self-emp\",83311,Black,Female,>50K\n"
        b"38,Private,,White,Male,<=50K\n")
    put(out, "csv", "header-only", b"\x00a,b,y\n")
    # safetensors: the small fixtures, and models with fixgrid.arch metadata
    for p in ["extras.model.safetensors"]:
        put(out, "safetensors", p, open(os.path.join(ROOT, "tests/fixtures", p), "rb").read())
    arch = "input name=in c=2 h=1 w=1\ndense name=fc out=2"
    put(out, "safetensors", "dense", safetensors(
        [("fc.weight", [2, 2], [1, 2, 3, 4]), ("fc.bias", [2], [0.5, -0.5])],
        {"fixgrid.arch": arch, "fixgrid.version": "0.1.0"}))
    arch = "input name=in c=1 h=3 w=3\nconv name=c out=1 k=2 bias=0\nbn name=b\nflatten name=f\ndense name=d out=2 bias=0"
    put(out, "safetensors", "convbn", safetensors(
        [("c.weight", [1, 1, 2, 2], [1, 0, 0, 1]), ("b.weight", [1], [1]), ("b.bias", [1], [0]),
         ("b.running_mean", [1], [0]), ("b.running_var", [1], [1]), ("d.weight", [2, 4], [0.1] * 8)],
        {"fixgrid.arch": arch}))
    put(out, "safetensors", "nometa", safetensors([("w", [3], [1, 2, 3])], None))
    # ledger: mode byte 1 = raw file (checksums), 0 = records appended by the harness
    recs = [
        "key=experiment-a2744c3d762ff520\tkind=experiment\tname=quick\tconfig_hash=a2744c3d762ff520"
        "\tfixgrid_version=0.1.0\tcommit=cc66ec3209d7\tblas=OpenBLAS Haswell threads=1"
        "\tapproaches=noop,finetune\tsubjects=tiny\tseeds=1,2",
        "key=9ba4ad4b2f5d2a15\tkind=prepare\tsubject=tiny\toutcome=OK\treason=\tacc0=85.44\ttime_s=0.87"
        "\tmodel=/store/618abcffe28aee9f/model.safetensors",
        "key=cbee1f703fc71c83\tkind=fix\tapproach=finetune\tfamily=model\tsubject=tiny\tseed=2"
        "\tvariant=cpu\toutcome=OK\treason=\tacc0=85.44\tacc=80.5\tacc_up_rel=-5.78\trr=24.58\tnfr=8.52"
        "\tbc=90.02\taaod0=\taaod=\taaod_up_rel=\tspd=\teod=\tdi=\ttime_s=27.2\tevals=630"
        "\tweights_changed=7\tparams_added=0\tnote=x",
        "key=11aa22bb33cc44dd\tkind=fix\tapproach=noop\tfamily=model\tsubject=tiny\tseed=1\tvariant="
        "\toutcome=CORRUPTED\treason=non-finite weight\tacc0=85.44\tacc=\trr=\tnfr=",
        "key=55ee66ff77aa88bb\tkind=robustness\tapproach=finetune\tfamily=model\tsubject=tiny\tasr_n=100"
        "\tasr0.1=50\tasr.1=40\tasr_up_rel.1=-20\tens.plain.1.acc=80\tens.plain.1.asr=30",
    ]
    text = "".join(ledger_line(r) for r in recs)
    put(out, "ledger", "raw", b"\x01" + text.encode())
    put(out, "ledger", "raw-torn", b"\x01" + (text + recs[0][:40]).encode())
    put(out, "ledger", "raw-corrupt", b"\x01" + text.replace("acc=80.5", "acc=80.6").encode())
    put(out, "ledger", "records", b"\x00" + "\n".join(recs).encode())
    put(out, "ledger", "rerun", b"\x00" + "\n".join(recs + [recs[2].replace("acc=80.5", "acc=81")]).encode())
    # store manifest (fuzz_manifest): a manifest as fg_store_prepare writes it
    put(out, "manifest", "manifest", "key=05e2817d09234527\nfile=model.safetensors\nversion=0.1.0\n"
        "params=468202\nbytes=1874004\nhash64=1234567890abcdef\ncreated_unix=1796299982\n"
        "fixgrid.subject=fmnist-vgg\nfixgrid.seed=1\n")


if __name__ == "__main__":
    main()
