"""Build a PyTorch module from a fixgrid model description (models/*.desc).

The description language is documented at the top of include/fixgrid/nn.h.
The module runs the nodes in order, each reading the node before it or the
nodes named by in=, so the PyTorch twin of a zoo entry has the same graph,
the same parameter shapes and the same initialisation scheme (PyTorch's
defaults, which fixgrid's fg_model_init_params follows).

Used by bench/bench_torch.py (throughput) and bench/bench_torch.py --count
(parameter totals, to check the zoo's hand-computed counts).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def parse(text, src="desc"):
    """Return a list of nodes: dicts with kind, name, in (list of names), args."""
    nodes = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        for part in raw.split("#", 1)[0].split(";"):
            tok = part.split()
            if not tok:
                continue
            kind, args = tok[0], {}
            for t in tok[1:]:
                if "=" not in t:
                    raise ValueError(f"{src}:{lineno}: expected key=value, got '{t}'")
                k, v = t.split("=", 1)
                args[k] = v
            name = args.pop("name", f"l{len(nodes)}")
            ins = args.pop("in", None)
            ins = ins.split(",") if ins else ([nodes[-1]["name"]] if nodes else [])
            nodes.append({"kind": kind, "name": name, "in": ins, "args": args, "line": lineno})
    return nodes


class _Scale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.weight.view(shape) + self.bias.view(shape)


class DescNet(nn.Module):
    """The graph of a description; parameters are registered under the node names."""

    def __init__(self, text, src="desc"):
        super().__init__()
        self.nodes = parse(text, src)
        self.mods = nn.ModuleDict()
        shapes = {}
        for nd in self.nodes:
            a, kind, name = nd["args"], nd["kind"], nd["name"]
            i = lambda k, d=None: int(a.get(k, d))  # noqa: E731
            if kind == "input":
                shp = (i("c"), i("h", 1), i("w", 1))
            else:
                c, h, w = shapes[nd["in"][0]]
            key = name.replace(".", "/")  # ModuleDict keys may not hold dots
            if kind == "input":
                pass
            elif kind == "conv":
                k, s, p = i("k"), i("s", 1), i("p", 0)
                self.mods[key] = nn.Conv2d(c, i("out"), k, s, p, bias=bool(i("bias", 1)))
                shp = (i("out"), (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
            elif kind == "dense":
                self.mods[key] = nn.Linear(c * h * w, i("out"), bias=bool(i("bias", 1)))
                shp = (i("out"), 1, 1)
            elif kind in ("maxpool", "avgpool"):
                k = i("k")
                s, p = i("s", k), i("p", 0)
                cls = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
                self.mods[key] = cls(k, s, p)
                shp = (c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
            elif kind == "gap":
                shp = (c, 1, 1)
            elif kind == "flatten":
                shp = (c * h * w, 1, 1)
            elif kind in ("relu", "add"):
                shp = (c, h, w)
            elif kind == "concat":
                shp = (sum(shapes[n][0] for n in nd["in"]), h, w)
            elif kind == "bn":
                self.mods[key] = nn.BatchNorm2d(
                    c, eps=float(a.get("eps", 1e-5)), momentum=float(a.get("momentum", 0.1))
                )
                shp = (c, h, w)
            elif kind == "dropout":
                self.mods[key] = nn.Dropout(float(a.get("p", 0.5)))
                shp = (c, h, w)
            elif kind == "scale":
                self.mods[key] = _Scale(c)
                shp = (c, h, w)
            else:
                raise ValueError(f"{src}:{nd['line']}: unknown node kind '{kind}'")
            shapes[name] = shp
            nd["key"] = key
            nd["shape"] = shp
        self.out_shape = self.nodes[-1]["shape"]

    def forward(self, x):
        acts = {}
        for nd in self.nodes:
            kind = nd["kind"]
            if kind == "input":
                y = x
            else:
                v = acts[nd["in"][0]]
                if kind == "dense":
                    y = self.mods[nd["key"]](v.flatten(1))
                elif kind == "relu":
                    y = F.relu(v)
                elif kind == "flatten":
                    y = v.flatten(1)
                elif kind == "gap":
                    y = v.mean(dim=(2, 3), keepdim=True)
                elif kind == "add":
                    y = v + acts[nd["in"][1]]
                elif kind == "concat":
                    y = torch.cat([acts[n] for n in nd["in"]], dim=1)
                else:
                    if kind == "bn" and v.dim() == 2:
                        v = v.view(v.shape[0], -1, 1, 1)
                    elif kind in ("conv", "maxpool", "avgpool") and v.dim() == 2:
                        v = v.view(v.shape[0], *self._shape_of(nd["in"][0]))
                    y = self.mods[nd["key"]](v)
            acts[nd["name"]] = y
        return y.flatten(1)

    def _shape_of(self, name):
        for nd in self.nodes:
            if nd["name"] == name:
                return nd["shape"]
        raise KeyError(name)

    def input_shape(self):
        return self.nodes[0]["shape"]
