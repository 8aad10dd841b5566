"""fixgrid import / predict against PyTorch (Debian's python3-torch).

A user's model is a plain nn.Sequential with its own random weights (and, for
the batch-norm case, random running statistics), saved as a state dict in the
safetensors format with names sorted as text, as the safetensors package
writes them ("0.weight", "10.weight", "3.weight", ...). `fixgrid import` maps
it onto the zoo architecture by order and shape; `fixgrid predict --logits`
must match PyTorch's logits within 1e-4, and the written model must load back
in PyTorch (tests/fixtures/fgdesc.py) with the same logits. Bad inputs get one
line on stderr and exit 2."""
import csv
import os
import subprocess
import sys
import tempfile
import unittest

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.environ["FG_SOURCE_DIR"], "tests", "fixtures"))
import fgdesc  # noqa: E402

EXE = os.environ["FG_EXE"]


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(3, 3),
        nn.Conv2d(6, 16, 3), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(16 * 3 * 3, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def vgg_small():
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2, 2), *block(32, 64), *block(64, 64),
                         nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def save_state_dict(model, path):
    sd = {k: v for k, v in model.state_dict().items()}
    fgdesc.save_safetensors(path, dict(sorted(sd.items())))  # text order, as the package writes


def run(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)


class ImportPredict(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.d = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def roundtrip(self, model, arch, n=16):
        torch.manual_seed(3)
        x = torch.randn(n, 1, 28, 28)
        with torch.no_grad():
            want = model(x)
        sd = os.path.join(self.d, "sd.safetensors")
        out = os.path.join(self.d, "f.safetensors")
        xs = os.path.join(self.d, "x.safetensors")
        csvp = os.path.join(self.d, "p.csv")
        save_state_dict(model, sd)
        r = run("import", "--arch", arch, "--from", sd, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        fgdesc.save_safetensors(xs, {"x": x})
        r = run("predict", "--model", out, "--inputs", xs, "--logits", "--csv", csvp)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(csvp) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), n)
        got = torch.tensor([[float(r[f"logit_{j}"]) for j in range(10)] for r in rows])
        self.assertLess((got - want).abs().max().item(), 1e-4)
        self.assertEqual([int(r["prediction"]) for r in rows], want.argmax(1).tolist())
        # the written file loads back in PyTorch with the same logits
        back = fgdesc.load_fixgrid_file(out).eval()
        with torch.no_grad():
            self.assertLess((back(x) - want).abs().max().item(), 1e-5)
        return sd, out

    def test_lenet5_by_order_and_shape(self):
        self.roundtrip(randomise(lenet5(), 1), "lenet5")

    def test_vgg_small_with_batch_norm(self):
        self.roundtrip(randomise(vgg_small(), 2), "vgg-small")

    def test_bad_inputs_get_one_line_and_exit_2(self):
        sd, _ = self.roundtrip(randomise(lenet5(), 4), "lenet5")
        out = os.path.join(self.d, "g.safetensors")
        # a model of another architecture
        r = run("import", "--arch", "vgg-small", "--from", sd, "--out", out)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertFalse(os.path.exists(out))
        # a map naming a tensor the file does not hold
        mp = os.path.join(self.d, "map.txt")
        with open(mp, "w") as f:
            f.write("nope.weight conv1.weight\n")
        r = run("import", "--arch", "lenet5", "--from", sd, "--out", out, "--map", mp)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("nope.weight", r.stderr)
        # an unknown architecture
        r = run("import", "--arch", "no-such-arch", "--from", sd, "--out", out)
        self.assertEqual(r.returncode, 2, r.stderr)


if __name__ == "__main__":
    unittest.main()
