"""`odyssey bench` runs a grid and records it; no timing is asserted."""

import json

import pytest
import torch

import variants
from study.cli import build_parser, main
from study.cli.bench import Row, _grid, _training_step, family_targets, measure, step_flops
from study.training.optim import PopulationNesterov


def test_tiny_grid_writes_json(tmp_path, capsys):
    path = tmp_path / "out" / "bench.json"
    argv = ["bench", "--device", "cpu", "--variants", "v,FGR", "--population", "1,3"]
    argv += ["--hidden", "4", "--length", "5", "--json", str(path)]
    assert main(argv) == 0
    assert "nn.LSTM" in capsys.readouterr().out
    record = json.loads(path.read_text())
    env = record["environment"]
    assert env["device"] == "cpu" and env["torch"] == torch.__version__
    assert env["torch_threads"] == torch.get_num_threads()
    assert {"repeats", "warmup", "loss", "optimizer", "baseline"} <= set(record["settings"])
    rows = record["rows"]
    assert [(r["variant"], r["population"]) for r in rows] == [
        ("V", 1),
        ("V", 3),
        ("FGR", 1),
        ("FGR", 3),
    ]
    for r in rows:
        assert set(r) == set(Row.__dataclass_fields__)
        assert (r["hidden"], r["length"]) == (4, 5)
        assert r["ms_per_trial"] > 0 and r["baseline_ms"] > 0
        assert r["ratio"] == pytest.approx(r["ms_per_trial"] / r["baseline_ms"])


def test_training_step_updates_every_trial():
    model = variants.build("CIFG", 3, 4, population=2)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = PopulationNesterov(list(model.parameters()), torch.ones(2), torch.zeros(2))
    _training_step(model, torch.randn(5, 2, 1, 3), optimizer)()
    for old, new in zip(before, model.parameters()):
        assert all((old[k] != new[k]).any() for k in range(2))


def test_quick_grid_holds_the_cpu_target_row():
    args = build_parser().parse_args(["bench", "--quick"])
    grid = _grid(args, torch.device("cpu"))
    assert {"V", "CIFG", "FGR", *variants.FAMILY} <= set(grid["variants"])
    assert grid["hidden"] == [100] and grid["length"] == [100]
    assert {16, 64} <= set(grid["population"])


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--population", "0,4", "--population: expected comma-separated positive integers"),
        ("--hidden", "x", "--hidden: expected comma-separated positive integers"),
        ("--variants", "V,XYZ", "--variants: unknown variant 'XYZ'"),
        ("--backend", "gpu", "--backend: expected one of auto, plain"),
    ],
)
def test_bad_options_are_explained(option, value, message, capsys):
    assert main(["bench", "--device", "cpu", option, value]) == 2
    assert message in capsys.readouterr().err


def test_backend_option_picks_the_recurrence_and_rows_name_it(tmp_path):
    path = tmp_path / "bench.json"
    argv = ["bench", "--device", "cpu", "--variants", "V", "--population", "2", "--hidden", "4"]
    for backend in ("fused", "plain"):
        assert main([*argv, "--length", "3", "--backend", backend, "--json", str(path)]) == 0
        assert [r["backend"] for r in json.loads(path.read_text())["rows"]] == [backend]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_a_device_is_explained(capsys):
    assert main(["bench", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_measure_runs_on_each_device(device):
    row = measure("FGR", 2, 3, 4, torch.device(device), repeats=1)
    assert (row.population, row.hidden, row.length, row.repeats) == (2, 3, 4, 1)
    assert row.ms_per_trial > 0 and row.baseline_ms > 0


def test_training_throughput_on_a_real_benchmark(tmp_path, capsys):
    path = tmp_path / "train.json"
    argv = ["bench", "--device", "cpu", "--training", "digits-framewise", "--sequences", "2"]
    argv += ["--population", "1,3", "--hidden", "4", "--json", str(path)]
    assert main(argv) == 0
    assert "trial-seq/s" in capsys.readouterr().out
    rows = json.loads(path.read_text())["rows"]
    assert [(r["model"], r["K"]) for r in rows] == [("torch.nn.LSTM", 1), ("V", 1), ("V", 3)]
    assert rows[1]["vs_K1"] == 1.0 and all(r["trial_seq_per_s"] > 0 for r in rows)
    assert rows[2]["vs_nn_lstm"] == pytest.approx(
        rows[2]["trial_seq_per_s"] / rows[0]["trial_seq_per_s"]
    )
    report = json.loads(path.read_text())
    assert report["matmul_gflops"] > 0
    assert rows[2]["gflops"] == pytest.approx(
        rows[2]["trial_seq_per_s"] * report["sequence_mflop"] / 1e3
    )


def test_step_flops_against_a_hand_count():
    # V on JSB (input 88, 100 units, 88 outputs): G = 400. Forward W x 2*400*88, R y
    # 2*400*100, head 2*88*100; backward dW 2*400*88, dR and R^T d 2*400*100 each, the
    # head's weight and input gradients 2*88*100 each.
    v = 3 * 2 * 400 * 100 + 2 * 2 * 400 * 88 + 3 * 2 * 88 * 100
    assert v == 433_600 and step_flops(variants.resolve("V"), 88, 100, 88, 1) == v
    # FGR, bidirectional, input 3, 2 units, 5 outputs: G = 8, R_gg 6 x 6 per direction
    # (forward once, backward twice: its gradient and R_gg^T times the step's gradient).
    per_direction = 2 * (2 * 8 * 3 + 3 * 8 * 2 + 3 * 36)
    expected = 2 * per_direction + 3 * 2 * 5 * 4
    assert step_flops(variants.resolve("FGR"), 3, 2, 5, 2) == expected
    # CIFG has two gates and no full recurrence: G = 3 H.
    assert step_flops(variants.resolve("CIFG"), 1, 1, 1, 1) == 2 * (2 * 3 + 3 * 3) + 6


def test_family_rows_name_their_baseline_and_targets(tmp_path):
    path = tmp_path / "bench.json"
    argv = ["bench", "--device", "cpu", "--variants", "family", "--population", "2"]
    assert main([*argv, "--hidden", "4", "--length", "3", "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    baselines = {r["variant"]: r["baseline"] for r in record["rows"]}
    assert baselines == {
        "V": "torch.nn.LSTM",
        "GRU": "torch.nn.GRU",
        "MGU": "torch.nn.GRU",
        "minGRU": "torch.nn.LSTM",
        "minLSTM": "torch.nn.LSTM",
        "sLSTM": "torch.nn.LSTM",
    }
    assert [t["variant"] for t in record["family_targets"]] == list(variants.FAMILY[1:])


def test_family_targets_take_each_cells_best_population():
    def row(variant, K, ms, base):
        return Row(variant, "compiled", "", K, 100, 100, ms, base, ms / base, 1)

    rows = [
        row("V", 1, 4.0, 2.0),
        row("V", 16, 2.0, 2.0),
        row("GRU", 1, 3.0, 2.0),
        row("GRU", 16, 1.5, 2.5),
        row("sLSTM", 16, 3.0, 2.0),
        row("minGRU", 64, 1.0, 2.0),
    ]
    got = {t["variant"]: (t["population"], t["against"], t["ratio"]) for t in family_targets(rows)}
    assert got == {
        "GRU": (16, "torch.nn.GRU", 0.6),
        "sLSTM": (16, "V", 1.5),
        "minGRU": (64, "V", 0.5),
    }


def test_backends_the_family_lacks_are_explained(capsys):
    assert main(["bench", "--device", "cpu", "--variants", "GRU", "--backend", "fused"]) == 2
    assert "GRU run on auto, plain, compiled" in capsys.readouterr().err
