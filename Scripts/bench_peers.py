#!/usr/bin/env python3
"""Times the Kernels convolution table in PyTorch (CPU) and in classic NumPy im2col/col2im,
beside Kernels itself measured in the same run, and prints the ratios.

Kernels' figures come from running the Swift harness with `--json --section conv`, so the
layers (including any `--layer`, `--filter` or `--quick` given here, which are passed on) and
the Kernels timings are exactly the harness's. Each peer call is then timed the same way:
a warm-up, then repeated runs, median milliseconds.

Layer by layer, Kernels and then its peers run back to back, in rounds (`--rounds`, default 3,
each with a third of the budget), and every figure is the median of its rounds' medians: on a
shared machine whose speed drifts by up to 2× over minutes, timing every Kernels layer first and
every peer afterwards let a slow minute fall on one side only, and even one Kernels run followed by
one peer run (10–20 s a layer) let a slow stretch of seconds land on one side of a row. Alternating
in rounds spreads such a stretch over both sides. A first short harness run (budget 0.01 s) only
lists the layers.

    make bench-peers                          # the DESIGN.md layer table
    make bench-peers BENCH_ARGS=--quick       # batch-1 smoke run
    python Scripts/bench_peers.py --kernels-bench Benchmarks/.build/release/kernels-bench \\
        --layer 8,64,56,56,64,3,3,1,1,1 --only-given-layers
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

PASSES = ["forward", "backward-input", "backward-weight", "forward+backward"]
STARTED = time.monotonic()


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels-bench", required=True, help="path to the built kernels-bench executable")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timed runs per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times Kernels and then its peers are measured, alternating, on each layer "
                             "(each round gets budget / rounds; --quick runs one)")
    parser.add_argument("--markdown", action="store_true", help="print the table as GitHub markdown")
    parser.add_argument("--skip-numpy", action="store_true", help="time PyTorch only")
    # Everything else (--quick, --layer, --filter, --only-given-layers) goes to kernels-bench.
    own, passed_on = parser.parse_known_args()
    own.quick = "--quick" in passed_on
    if own.rounds < 1:
        parser.error("--rounds must be at least 1")
    if own.quick:
        own.rounds = 1
    return own, passed_on


def progress(message):
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def run_kernels(executable, passed_on, budget):
    """Runs the Swift harness on the conv section and returns its machine record and the
    conv measurements grouped by layer, in table order."""
    command = [executable, "--json", "--section", "conv", "--budget", str(budget)] + passed_on
    progress("kernels: " + " ".join(command))
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    machine, layers = None, {}
    for line in output.splitlines():
        record = json.loads(line)
        if record["section"] == "machine":
            machine = record
        elif record["section"] == "conv":
            layer = layers.setdefault((record["name"], record["shape"]), {})
            layer[record["variant"]] = record["ms"]
    return machine, layers


def median_ms(body, quick, budget):
    """Median milliseconds of `body`, with the harness's policy: warm up for 50 ms (at least
    one call), then at least 5 runs and `budget` seconds (quick: 2 runs)."""
    warm_up, minimum_runs, maximum_runs = (0.0, 2, 5) if quick else (0.05, 5, 200)
    budget = 0.01 if quick else budget
    start = time.perf_counter()
    body()
    while time.perf_counter() - start < warm_up:
        body()
    samples, spent = [], 0.0
    while len(samples) < maximum_runs and (len(samples) < minimum_runs or spent < budget):
        start = time.perf_counter()
        body()
        elapsed = time.perf_counter() - start
        samples.append(elapsed)
        spent += elapsed
    return statistics.median(samples) * 1e3


class Layer:
    def __init__(self, shape):
        (self.n, self.c, self.h, self.w, self.f, self.kh, self.kw,
         self.stride, self.padding, self.dilation) = (int(v) for v in shape.split(","))
        self.oh = (self.h + 2 * self.padding - self.dilation * (self.kh - 1) - 1) // self.stride + 1
        self.ow = (self.w + 2 * self.padding - self.dilation * (self.kw - 1) - 1) // self.stride + 1


class TorchConvolution:
    """PyTorch's own CPU convolution (oneDNN / MKL), the way a training step calls it."""

    def __init__(self, layer, generator):
        self.layer = layer
        self.x = torch.randn(layer.n, layer.c, layer.h, layer.w, generator=generator)
        self.weight = torch.randn(layer.f, layer.c, layer.kh, layer.kw, generator=generator)
        self.bias = torch.randn(layer.f, generator=generator)
        self.dy = torch.randn(layer.n, layer.f, layer.oh, layer.ow, generator=generator)
        self.arguments = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)

    def forward(self):
        with torch.no_grad():
            return F.conv2d(self.x, self.weight, self.bias, **self.arguments)

    def _backward(self, mask):
        layer = self.layer
        return torch.ops.aten.convolution_backward(
            self.dy, self.x, self.weight, None, [layer.stride] * 2, [layer.padding] * 2,
            [layer.dilation] * 2, False, [0, 0], 1, mask)

    def backward_input(self):
        return self._backward([True, False, False])[0]

    def backward_weight(self):
        return self._backward([False, True, False])[1]

    def forward_backward(self):
        x = self.x.detach().requires_grad_()
        weight = self.weight.detach().requires_grad_()
        bias = self.bias.detach().requires_grad_()
        F.conv2d(x, weight, bias, **self.arguments).backward(self.dy)
        return x.grad, weight.grad, bias.grad


class NumPyConvolution:
    """The classic NumPy convolution: im2col by one strided slice copy per kernel tap, one
    matmul over the whole batch, col2im by one strided slice add per tap (cs231n's fast
    layers, Caffe's layout)."""

    def __init__(self, peer):
        self.layer = peer.layer
        self.x = peer.x.numpy()
        self.weight = peer.weight.numpy()
        self.bias = peer.bias.numpy()
        self.dy = peer.dy.numpy()

    def _taps(self):
        layer = self.layer
        for i in range(layer.kh):
            for j in range(layer.kw):
                rows = slice(i * layer.dilation, i * layer.dilation + layer.stride * (layer.oh - 1) + 1, layer.stride)
                columns = slice(j * layer.dilation, j * layer.dilation + layer.stride * (layer.ow - 1) + 1, layer.stride)
                yield i, j, rows, columns

    def im2col(self, x):
        layer, p = self.layer, self.layer.padding
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        columns = np.empty((layer.c, layer.kh, layer.kw, layer.n, layer.oh, layer.ow), dtype=x.dtype)
        for i, j, rows, cols in self._taps():
            columns[:, i, j] = padded[:, :, rows, cols].transpose(1, 0, 2, 3)
        return columns.reshape(layer.c * layer.kh * layer.kw, -1)

    def col2im(self, columns):
        layer, p = self.layer, self.layer.padding
        padded = np.zeros((layer.n, layer.c, layer.h + 2 * p, layer.w + 2 * p), dtype=columns.dtype)
        taps = columns.reshape(layer.c, layer.kh, layer.kw, layer.n, layer.oh, layer.ow)
        for i, j, rows, cols in self._taps():
            padded[:, :, rows, cols] += taps[:, i, j].transpose(1, 0, 2, 3)
        return np.ascontiguousarray(padded[:, :, p:p + layer.h, p:p + layer.w])

    def _output_matrix(self):
        return self.dy.transpose(1, 0, 2, 3).reshape(self.layer.f, -1)

    def forward(self, columns=None):
        layer = self.layer
        columns = self.im2col(self.x) if columns is None else columns
        y = self.weight.reshape(layer.f, -1) @ columns + self.bias[:, None]
        return np.ascontiguousarray(y.reshape(layer.f, layer.n, layer.oh, layer.ow).transpose(1, 0, 2, 3))

    def backward_input(self):
        return self.col2im(self.weight.reshape(self.layer.f, -1).T @ self._output_matrix())

    def backward_weight(self, columns=None):
        columns = self.im2col(self.x) if columns is None else columns
        return (self._output_matrix() @ columns.T).reshape(self.weight.shape)

    def forward_backward(self):
        # The forward pass keeps its column matrix for the weight gradient, as the classic layer does.
        columns = self.im2col(self.x)
        self.forward(columns)
        return self.backward_input(), self.backward_weight(columns), self.dy.sum(axis=(0, 2, 3))


def check(numpy_peer, torch_peer, name):
    """One call each, compared to PyTorch, so a wrong NumPy version cannot look fast."""
    pairs = [(numpy_peer.forward(), torch_peer.forward()),
             (numpy_peer.backward_input(), torch_peer.backward_input()),
             (numpy_peer.backward_weight(), torch_peer.backward_weight())]
    for ours, theirs in pairs:
        theirs = theirs.numpy()
        scale = max(1.0, float(np.abs(theirs).max()))
        if float(np.abs(ours - theirs).max()) > 1e-3 * scale:
            print(f"warning: NumPy result for {name} differs from PyTorch", file=sys.stderr)


def format_number(value):
    if value != value:
        return "—"
    for limit, decimals in ((100, 0), (10, 1), (1, 2), (0.1, 3)):
        if abs(value) >= limit:
            return f"{value:.{decimals}f}"
    return f"{value:.4f}"


def print_table(title, headers, rows, first_numeric, markdown, notes):
    print(title + "\n")
    if markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "".join("---|" if i < first_numeric else "---:|" for i in range(len(headers))))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]
        def line(cells):
            return "  ".join(c.ljust(w) if i < first_numeric else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths)))
        print(line(headers))
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print(line(row))
    print("\n" + "\n".join(notes))


def kernels_layer(executable, passed_on, budget, shape):
    """Kernels' timings of one layer, measured now: the harness on that layer alone."""
    quick = ["--quick"] if "--quick" in passed_on else []
    _, layers = run_kernels(executable, quick + ["--only-given-layers", "--layer", shape], budget)
    return next(iter(layers.values()))


def main():
    own, passed_on = parse_arguments()
    machine, listed = run_kernels(own.kernels_bench, passed_on, 0.01)
    if not listed:
        sys.exit("kernels-bench measured no convolution layer (check --filter / --layer)")

    generator = torch.Generator().manual_seed(0)
    rows = []
    round_budget = own.budget / own.rounds
    for name, shape in listed:
        layer = Layer(shape)
        torch_peer = TorchConvolution(layer, generator)
        numpy_peer = None if own.skip_numpy else NumPyConvolution(torch_peer)
        if numpy_peer is not None:
            check(numpy_peer, torch_peer, name)
        # samples[variant][side]: one median per round.
        samples = {variant: {"kernels": [], "torch": [], "numpy": []} for variant in PASSES}
        for round_index in range(own.rounds):
            kernels_ms = kernels_layer(own.kernels_bench, passed_on, round_budget, shape)
            for variant in PASSES:
                method = variant.replace("+", "_").replace("-", "_")
                progress(f"peers {name} {variant} (round {round_index + 1} of {own.rounds})")
                samples[variant]["kernels"].append(kernels_ms[variant])
                samples[variant]["torch"].append(median_ms(getattr(torch_peer, method), own.quick, round_budget))
                samples[variant]["numpy"].append(median_ms(getattr(numpy_peer, method), own.quick, round_budget)
                                                 if numpy_peer is not None else float("nan"))
        for index, variant in enumerate(PASSES):
            ours, torch_ms, numpy_ms = (statistics.median(samples[variant][side]) for side in ("kernels", "torch", "numpy"))
            summary = (f"{layer.n},{layer.c},{layer.h},{layer.w}→{layer.f},{layer.kh},"
                       f"s{layer.stride},p{layer.padding}" + (f",d{layer.dilation}" if layer.dilation != 1 else ""))
            rows.append([name if index == 0 else "", summary if index == 0 else "", variant,
                         format_number(ours), format_number(torch_ms), format_number(numpy_ms),
                         format_number(torch_ms / ours) + "×", format_number(numpy_ms / ours) + "×"])

    print(f"Kernels vs PyTorch {torch.__version__} (CPU, {torch.get_num_threads()} threads) "
          f"and NumPy {np.__version__} im2col/col2im" + (" (--quick: figures are not meaningful)" if own.quick else ""))
    if machine:
        print(f"CPU: {machine['cpu']}, {machine['cores']} cores; {machine['openblas']}; "
              f"load average at start {machine['load_average']}, at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print_table("Convolution, median ms; ratio = peer ms ÷ Kernels ms (above 1×: Kernels is faster)",
                ["layer", "N,C,H,W→F,k,s,p", "pass", "Kernels", "PyTorch", "NumPy", "PyTorch/Kernels", "NumPy/Kernels"],
                rows, 3, own.markdown,
                [f"Kernels: kernels-bench --json --section conv on each layer alone, right before its peers, in {own.rounds} "
                 f"alternating round{'s' if own.rounds != 1 else ''} of {format_number(round_budget)} s per measurement; "
                 "each figure is the median of the rounds' medians.",
                 "PyTorch: F.conv2d (no_grad) for forward, aten.convolution_backward with one output mask for",
                 "  backward-input / backward-weight, and conv2d(...).backward(dy) with x, w, b requiring grad for forward+backward.",
                 "NumPy: per-tap strided im2col, one float32 matmul over the batch, per-tap slice-add col2im;",
                 "  forward+backward keeps the forward's columns for the weight gradient."])


if __name__ == "__main__":
    main()
