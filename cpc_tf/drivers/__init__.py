"""Drivers: multi-stage runs built from the protocols, each writing one report.

  study.py       the claim study (ICLR Figure 1 / Table 5 on the embedded data):
                 pre-training, linear and few-label protocols, embedding map, report
  study_data.py  the study pointed at any labelled source (--dataset), checked first
  dynamics.py    learning dynamics (arXiv v1 7.3): few-label runs per checkpoint
  ablation.py    the v1 -> v2 ladder of ICLR Figure 3 at small scale

A driver sits above everything it runs: it imports train, embed and eval/, and
nothing below it imports a driver, so the folders stay free of import cycles
(tests/test_layering.py).
"""
