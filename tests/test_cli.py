"""The package as installed: torch-only import, layers, the ``labelreg-nlp`` command."""

import subprocess
import sys


def test_import_needs_torch_only():
    code = ("import sys, labelreg_nlp; heavy = {'fairseq', 'transformers', 'datasets', 'accelerate', 'sacrebleu'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_user_dir_points_at_an_importable_plugin():
    from labelreg_nlp.cli import fairseq_argv, user_dir

    path = user_dir()
    assert path.endswith("labelreg_nlp_criterions")
    argv = fairseq_argv("fairseq-train", ["data-bin", "--criterion", "maxsup_cross_entropy"])
    assert argv[1:4] == ["--user-dir", path, "data-bin"]
    assert fairseq_argv("fairseq-train", ["--user-dir=mine", "x"])[1:] == ["--user-dir=mine", "x"]


def test_cli_methods_prints_the_registry_table(capsys):
    from labelreg_nlp.cli import main
    from labelreg_nlp.losses.registry import methods_table

    assert main(["methods"]) == 0
    assert capsys.readouterr().out.strip() == methods_table()
