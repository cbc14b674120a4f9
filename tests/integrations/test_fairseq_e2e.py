"""Real fairseq-preprocess / fairseq-train / fairseq-generate with the criteria, on CPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fairseq")

from labelreg_nlp.experiments.corpora import split_pairs, synthetic_pairs  # noqa: E402
from labelreg_nlp.experiments.translation import epoch_summaries as epoch_stats  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = [
    "--arch", "transformer", "--share-all-embeddings", "--encoder-layers", "1", "--decoder-layers", "1",
    "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
    "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]
TRAIN = [
    "--optimizer", "adam", "--lr", "0.003", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "10",
    "--max-tokens", "800", "--dropout", "0.0", "--seed", "1", "--num-workers", "0", "--cpu",
    "--log-format", "json", "--log-interval", "1000", "--no-epoch-checkpoints", "--report-accuracy",
]


def env():
    e = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    return e


def fairseq(command, *args, cwd=None):
    out = subprocess.run([sys.executable, "-m", f"fairseq_cli.{command}", *map(str, args)], env=env(),
                         capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, f"fairseq-{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    work = tmp_path_factory.mktemp("fairseq")
    splits = split_pairs(synthetic_pairs(1200, seed=3), valid=60, test=40, seed=0)
    for split, pairs in splits.items():
        for i, lang in enumerate(("de", "en")):
            text = "\n".join(p[i].replace(".", " .") for p in pairs) + "\n"
            (work / f"{split}.{lang}").write_text(text)
    fairseq("preprocess", "--source-lang", "de", "--target-lang", "en", "--joined-dictionary",
            "--trainpref", work / "train", "--validpref", work / "valid", "--testpref", work / "test",
            "--destdir", work / "bin", "--workers", "1")
    return work / "bin"


CRITERIA = {
    "ls": ["--criterion", "ls_cross_entropy", "--label-smoothing", "0.1"],
    "maxsup": ["--criterion", "maxsup_cross_entropy", "--maxsup-alpha", "0.1"],
}
LEARNED = {  # trained, resumed and inspected in test_learned_table_is_optimized_checkpointed_and_resumed_bit_exact
    "lspp": ["--criterion", "lspp_cross_entropy", "--lspp-alpha", "0.1"],
    "lls": ["--criterion", "lls_cross_entropy", "--lls-alpha", "0.1", "--lls-rank", "8"],
}


@pytest.mark.parametrize("name", sorted(CRITERIA))
def test_train_two_epochs_then_generate(data_bin, tmp_path, name):
    save = tmp_path / "ckpt"
    log = fairseq("train", data_bin, "--user-dir", REPO / "criterions", *TINY_MODEL, *TRAIN, *CRITERIA[name],
                  "--max-epoch", "2", "--save-dir", save)
    train = epoch_stats(log)
    assert [r["epoch"] for r in train] == [1, 2]
    assert float(train[1]["train_loss"]) < float(train[0]["train_loss"])
    assert float(train[1]["train_nll_loss"]) < float(train[0]["train_nll_loss"])
    assert "train_accuracy" in train[0] and "train_ppl" in train[0]
    if name == "maxsup":
        assert float(train[0]["train_alpha"]) == pytest.approx(0.1)
        assert float(train[0]["train_maxsup"]) > 0
    out = fairseq("generate", data_bin, "--user-dir", REPO / "criterions", "--path", save / "checkpoint_best.pt",
                  "--gen-subset", "test", "--beam", "2", "--batch-size", "16", "--cpu",
                  "--required-batch-size-multiple", "1")
    hyps = [line.split("\t") for line in out.splitlines() if line.startswith("H-")]
    assert len(hyps) == 40
    assert all(len(h) == 3 and float(h[1]) <= 0 for h in hyps)
    assert "BLEU4 =" in out


def test_resume_keeps_the_schedule_and_loads_with_torch_weights_only_default(data_bin, tmp_path):
    """Stop after epoch 1, resume to epoch 3: same alphas as the schedule and no unpickling error,
    without TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD in the environment."""
    args = [data_bin, "--user-dir", REPO / "criterions", *TINY_MODEL, *TRAIN, "--criterion", "maxsup_cross_entropy",
            "--maxsup-alpha", "0.1", "--maxsup-alpha-end", "0.2", "--maxsup-schedule-horizon", "3",
            "--save-dir", tmp_path / "ckpt"]
    first = epoch_stats(fairseq("train", *args, "--max-epoch", "1"))
    second = epoch_stats(fairseq("train", *args, "--max-epoch", "3"))
    assert [r["epoch"] for r in first] == [1] and [r["epoch"] for r in second] == [2, 3]
    assert [float(r["train_alpha"]) for r in first + second] == pytest.approx([0.1, 0.15, 0.2])


def test_packaged_user_dir_and_wrapper_reach_the_criteria(data_bin, tmp_path):
    """What a pip user without a clone runs: labelreg-nlp fairseq-train / fairseq-generate."""
    cli = [sys.executable, "-m", "labelreg_nlp.cli"]
    user_dir = subprocess.run([*cli, "user-dir"], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(user_dir, "__init__.py").is_file() and Path(user_dir).name != "criterions"
    save = tmp_path / "ckpt"
    run = subprocess.run([*cli, "fairseq-train", str(data_bin), *TINY_MODEL, *TRAIN,
                          "--criterion", "maxsup_cross_entropy", "--max-epoch", "1", "--save-dir", str(save)],
                         capture_output=True, text=True, env=env(), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert epoch_stats(run.stdout + run.stderr)[0]["train_alpha"]
    gen = subprocess.run([*cli, "fairseq-generate", str(data_bin), "--path", str(save / "checkpoint_last.pt"),
                          "--gen-subset", "valid", "--beam", "1", "--cpu", "--batch-size", "16",
                          "--required-batch-size-multiple", "1"],
                         capture_output=True, text=True, env=env(), cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr[-3000:]
    assert sum(line.startswith("H-") for line in gen.stdout.splitlines()) == 60


def test_ols_state_after_resume_equals_an_uninterrupted_run(data_bin, tmp_path):
    """Stop after epoch 2, resume to 3: the soft labels are exactly the uninterrupted run's.

    The period of epoch 2 is finalized only when epoch 3 begins, i.e. after the restart, from
    the accumulators the epoch-2 checkpoint carried. (The epoch-3 accumulators themselves are not
    compared: fairseq's resume is not bit-exact for the model, ~7e-3 with plain LS too.)"""
    import shutil

    import torch

    args = [data_bin, "--user-dir", REPO / "criterions", *TINY_MODEL, *TRAIN, "--criterion", "ols_cross_entropy",
            "--ols-topk", "8"]
    straight = fairseq("train", *args, "--max-epoch", "3", "--save-dir", tmp_path / "a")
    fairseq("train", *args, "--max-epoch", "2", "--save-dir", tmp_path / "b")
    shutil.copy(tmp_path / "b" / "checkpoint_last.pt", tmp_path / "epoch2.pt")
    resumed = fairseq("train", *args, "--max-epoch", "3", "--save-dir", tmp_path / "b")
    assert [r["epoch"] for r in epoch_stats(resumed)] == [3]
    at_stop = torch.load(tmp_path / "epoch2.pt", weights_only=False)["criterion"]
    assert at_stop is not None and int(at_stop["ols.periods"]) == 1 and float(at_stop["ols.count"].sum()) > 0
    a = torch.load(tmp_path / "a" / "checkpoint_last.pt", weights_only=False)["criterion"]
    b = torch.load(tmp_path / "b" / "checkpoint_last.pt", weights_only=False)["criterion"]
    assert set(a) == set(b) and int(a["ols.periods"]) == int(b["ols.periods"]) == 2
    for key in ("ols.table.soft_idx", "ols.table.soft_val", "ols.table.soft_tail", "current_epoch"):
        assert torch.equal(a[key], b[key]), key
    rows = epoch_stats(straight)
    assert float(rows[0]["train_ols_target_mass"]) < float(rows[1]["train_ols_target_mass"])  # S learned
    assert [float(r["train_ols_periods"]) for r in rows] == [0, 1, 2]


def _in_process_trainer(args):
    """fairseq's own Trainer, built as fairseq-train builds it."""
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), list(map(str, args))))
    utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
    return cfg, Trainer(cfg, task, model, criterion)


@pytest.mark.parametrize("name", ["lspp", "lls"])
def test_learned_table_is_optimized_checkpointed_and_resumed_bit_exact(data_bin, tmp_path, name):
    """fairseq puts the table in the optimizer and the checkpoint; resuming loads both exactly.

    (A resumed run is compared with the checkpoint, not with an uninterrupted run: fairseq's
    resume feeds epoch 2 its batches in another order, so even plain LS differs after it.)"""
    import torch
    from fairseq import checkpoint_utils

    args = [data_bin, "--user-dir", REPO / "criterions", *TINY_MODEL, *TRAIN, *LEARNED[name], "--save-dir", tmp_path]
    first = epoch_stats(fairseq("train", *args, "--max-epoch", "1"))
    assert float(first[0][f"train_{name}_reverse"]) > 0 and float(first[0]["train_accuracy"]) > 0
    saved = torch.load(tmp_path / "checkpoint_last.pt", weights_only=False)
    table = {k: v for k, v in saved["criterion"].items() if ".table." in k}
    assert table and all(torch.count_nonzero(v) > 0 for v in table.values())  # learned from zeros / v = 0
    cfg, trainer = _in_process_trainer(args)
    criterion_params = [id(p) for p in trainer.get_criterion().parameters()]
    assert set(criterion_params) <= {id(p) for p in trainer.optimizer.params}
    checkpoint_utils.load_checkpoint(cfg.checkpoint, trainer)
    for key, value in trainer.get_criterion().state_dict().items():
        assert torch.equal(value, saved["criterion"][key]), key
    # Adam's moments of the table came back too (optimizer state is keyed by parameter position)
    position = {id(p): i for i, p in enumerate(trainer.optimizer.params)}
    state = trainer.optimizer.optimizer.state_dict()["state"]
    for p in trainer.get_criterion().parameters():
        i = position[id(p)]
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state[i][moment], saved["last_optimizer_state"]["state"][i][moment])
    # the learned neighbours, named by the checkpoint's target dictionary (most frequent tokens first)
    shown = subprocess.run([sys.executable, "-m", "labelreg_nlp.cli", "neighbours", str(tmp_path / "checkpoint_last.pt"),
                            "--classes", "3", "--top", "2"], capture_output=True, text=True, env=env())
    assert shown.returncode == 0, shown.stderr
    most_frequent = (data_bin / "dict.en.txt").read_text().split()[0]
    assert shown.stdout.splitlines()[3].startswith(f"| `{most_frequent}` |")
    # and a real resumed fairseq-train goes on learning from it
    resumed = epoch_stats(fairseq("train", *args, "--max-epoch", "2"))
    assert [r["epoch"] for r in resumed] == [2]
    # the learned rows move away from uniform as training goes on
    assert float(resumed[0][f"train_{name}_top_mass"]) > float(first[0][f"train_{name}_top_mass"])
    assert float(resumed[0]["train_nll_loss"]) < float(first[0]["train_nll_loss"])
    after = torch.load(tmp_path / "checkpoint_last.pt", weights_only=False)
    # Adam counted the updates of both runs for the table: its state continued, not restarted
    assert int(after["last_optimizer_state"]["state"][i]["step"]) == int(after["optimizer_history"][-1]["num_updates"])
    assert int(saved["last_optimizer_state"]["state"][i]["step"]) < int(after["last_optimizer_state"]["state"][i]["step"])
    assert all(not torch.equal(after["criterion"][key], value) for key, value in table.items())


@pytest.mark.parametrize("fused", [False, True], ids=["logits", "fused-output-layer"])
def test_two_process_training_keeps_the_table_identical_on_both_ranks(data_bin, tmp_path, fused):
    """torchrun, gloo on CPU: fairseq wraps the criterion in DDP and all-reduces its gradients
    (with --fused-output-layer too, whose gradients reach the model and the table outside DDP's forward)."""
    import socket

    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = REPO / "tests" / "integrations" / "fairseq_distributed_worker.py"
    train = [a for a in TRAIN if a != "--cpu"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(worker), str(tmp_path), str(data_bin), "--user-dir", str(REPO / "criterions"),
           *TINY_MODEL, *train, "--criterion", "lspp_cross_entropy", "--lspp-rank", "8", "--max-epoch", "2",
           "--save-dir", str(tmp_path / "ckpt"), *(["--fused-output-layer"] if fused else [])]
    result = subprocess.run(cmd, env={**env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "training on 2 devices" in result.stdout + result.stderr
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and any(".table." in k for k in rank0)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert torch.count_nonzero(rank0["lspp.table.v"]) > 0


def test_fused_output_layer_trains_like_the_plain_criterion(data_bin, tmp_path):
    """fairseq-train --fused-output-layer: per-epoch training and validation losses equal the plain
    run's to the logged rounding (same seed and data; only float summation order differs)."""
    logs = {}
    for fused in (False, True):
        extra = ["--fused-output-layer"] if fused else []
        logs[fused] = fairseq("train", data_bin, "--user-dir", REPO / "criterions", *TINY_MODEL, *TRAIN,
                              *CRITERIA["maxsup"], *extra, "--max-epoch", "2", "--save-dir", tmp_path / str(fused))
    assert "--fused-output-layer:" not in logs[True]  # no fallback warning: the transformer's projection is used
    for prefix in ("train", "valid"):
        plain, fused = epoch_stats(logs[False], prefix), epoch_stats(logs[True], prefix)
        assert [r["epoch"] for r in fused] == [r["epoch"] for r in plain] == [1, 2]
        for a, b in zip(plain, fused):
            for key in (f"{prefix}_loss", f"{prefix}_nll_loss", f"{prefix}_maxsup", f"{prefix}_accuracy"):
                assert float(b[key]) == pytest.approx(float(a[key]), abs=0.0025), key


def test_fine_tuning_from_another_criterions_checkpoint(data_bin, tmp_path):
    """A label_smoothed_cross_entropy checkpoint (criterion state None) restores into ols, lspp and
    lls: with --restore-file and every --reset-* flag, and in the same --save-dir with
    --reset-optimizer. The model loads (the first fine-tuning epoch starts where pre-training
    ended, far below a fresh model), the criterion starts fresh with one log line."""
    import shutil

    import torch

    base = [data_bin, "--user-dir", REPO / "criterions", *TINY_MODEL, *TRAIN]
    pre = epoch_stats(fairseq("train", *base, "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                              "--max-epoch", "2", "--save-dir", tmp_path / "pre"))
    assert torch.load(tmp_path / "pre" / "checkpoint_last.pt", weights_only=False)["criterion"] is None
    resets = ["--reset-optimizer", "--reset-dataloader", "--reset-meters", "--reset-lr-scheduler"]
    for name, criterion in {"ols": ["--criterion", "ols_cross_entropy"], **LEARNED}.items():
        log = fairseq("train", *base, *criterion, "--restore-file", tmp_path / "pre" / "checkpoint_last.pt", *resets,
                      "--max-epoch", "1", "--save-dir", tmp_path / name)
        assert f"starting the {name} state fresh" in log and "Cannot load model parameters" not in log
        tuned = epoch_stats(log)
        assert [r["epoch"] for r in tuned] == [1]
        # from the pre-trained model: its first epoch is already better than pre-training's first
        assert float(tuned[0]["train_nll_loss"]) < float(pre[0]["train_nll_loss"]) - 0.5, (name, tuned, pre)
        state = torch.load(tmp_path / name / "checkpoint_last.pt", weights_only=False)["criterion"]
        assert any(key.startswith(name + ".") for key in state)
    same = tmp_path / "same"
    shutil.copytree(tmp_path / "pre", same)
    log = fairseq("train", *base, "--criterion", "ols_cross_entropy", "--reset-optimizer", "--max-epoch", "3",
                  "--save-dir", same)
    assert "starting the ols state fresh" in log and [r["epoch"] for r in epoch_stats(log)] == [3]


FP16_CRITERIA = {
    "ls": CRITERIA["ls"], "maxsup": CRITERIA["maxsup"], "ols": ["--criterion", "ols_cross_entropy"], **LEARNED,
}


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="--fp16 training needs a CUDA device")
@pytest.mark.parametrize("name", sorted(FP16_CRITERIA))
def test_fp16_on_cuda_against_label_smoothed_cross_entropy(data_bin, tmp_path, name):
    """On a GPU with --fp16, each criterion trains; ls_cross_entropy's epoch losses equal fairseq's
    label_smoothed_cross_entropy's (same seed), the others stay near them (alpha 0.1)."""
    gpu = [a for a in TRAIN if a != "--cpu"] + ["--fp16", "--max-epoch", "2"]
    ours = epoch_stats(fairseq("train", data_bin, "--user-dir", REPO / "criterions", *TINY_MODEL, *gpu,
                               *FP16_CRITERIA[name], "--save-dir", tmp_path / "ours"))
    theirs = epoch_stats(fairseq("train", data_bin, *TINY_MODEL, *gpu, "--criterion", "label_smoothed_cross_entropy",
                                 "--label-smoothing", "0.1", "--save-dir", tmp_path / "theirs"))
    assert [r["epoch"] for r in ours] == [1, 2]
    for a, b in zip(ours, theirs):
        if name == "ls":
            assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-2)
        assert float(a["train_nll_loss"]) == pytest.approx(float(b["train_nll_loss"]), rel=0.2)
