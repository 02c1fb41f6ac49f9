"""The cue-shift summary: changes of test accuracy against "as trained", over stored reports."""

from __future__ import annotations

from experiments.cue_shift import summary

REPORT = """# seed {seed}
utd_calon
  test  depth      support evidence -0.03 ± 0.61 sd   alpha 1.161 ± 0.333
  test accuracy: as trained {a}%, calibrator off {b}%, alpha without evidence {c}%, beta without evidence {d}%
"""


def test_summary_averages_the_changes_over_the_reports():
    text = summary([REPORT.format(seed=0, a=93.0, b=95.0, c=94.0, d=93.0),
                    REPORT.format(seed=1, a=95.0, b=95.0, c=96.0, d=95.0)])
    assert text == ("utd_calon (2 runs): as trained 94.0%, calibrator off +1.0 ± 1.4, "
                    "alpha without evidence +1.0 ± 0.0, beta without evidence +0.0 ± 0.0")
