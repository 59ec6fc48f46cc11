"""Result files -> Markdown tables and PNG plots (cpc_tf/eval/report.py)."""

import json
import os

import pytest

from cpc_tf.eval import report


def _row(method, fraction, top1, top5, **extra):
  return dict(method=method, label_fraction=fraction, top1=top1, top5=top5, split="test",
              num_train_examples=int(60000 * fraction), **extra)


def _write(path, protocol, rows, **top):
  results = dict(protocol=protocol, dataset="fashion_mnist", encoder="tiny", config={},
                 rows=rows)
  results.update(top)
  path.write_text(json.dumps(results))
  return str(path)


@pytest.fixture
def two_files(tmp_path):
  _write(tmp_path / "cpc.json", "efficient", [
      _row("CPC v2 (fixed)", 0.01, 0.5, 0.9),
      _row("CPC v2 (fixed)", 0.1, 0.7, 0.95),
      _row("CPC v2 (fixed)", 1.0, 0.8512, 0.99)])
  _write(tmp_path / "sup.json", "supervised", [
      _row("Supervised", 1.0, 0.9, 0.995),
      _row("Supervised", 0.01, 0.4, 0.8)])
  return tmp_path


def test_tables_have_one_row_per_method_and_one_column_per_fraction(two_files):
  curves = report.curves_from_results(report.load([str(two_files / "*.json")]))
  assert report.markdown_table(curves, "top1") == (
      "| Method | 1% | 10% | 100% |\n"
      "|---|---:|---:|---:|\n"
      "| CPC v2 (fixed) | 50.0 | 70.0 | 85.1 |\n"
      "| Supervised | 40.0 | - | 90.0 |")
  assert report.markdown_table(curves, "top5") == (
      "| Method | 1% | 10% | 100% |\n"
      "|---|---:|---:|---:|\n"
      "| CPC v2 (fixed) | 90.0 | 95.0 | 99.0 |\n"
      "| Supervised | 80.0 | - | 99.5 |")


def test_paper_rows_are_labelled_and_hold_table_5(two_files):
  curves = report.curves_from_results(report.load([str(two_files / "cpc.json")]))
  table = report.markdown_table(curves + report.paper_curves(), "top5")
  lines = table.splitlines()
  assert lines[0] == "| Method | 1% | 2% | 5% | 10% | 20% | 50% | 100% |"
  assert lines[2] == "| CPC v2 (fixed) | 90.0 | - | - | 95.0 | - | - | 99.0 |"
  assert lines[3] == ("| Supervised on pixels (paper) | 44.1 | 59.9 | 75.2 | 82.1 | 87.9 | "
                      "91.8 | 93.8 |")
  assert lines[4] == ("| ResNet on CPC v2, fine-tuned (paper) | 72.9 | 79.6 | 86.1 | 89.5 | "
                      "91.4 | 93.6 | 95.2 |")
  top1 = report.markdown_table(report.paper_curves(), "top1").splitlines()
  assert top1[3].endswith("| 46.3 | 54.7 | 64.1 | 69.7 | 73.0 | 77.3 | 80.6 |")


def test_checkpoint_steps_make_separate_rows(tmp_path):
  path = _write(tmp_path / "dyn.json", "dynamics", [
      _row("CPC (fixed)", 0.5, 0.2, 0.6, checkpoint_step=0),
      _row("CPC (fixed)", 0.5, 0.3, 0.7, checkpoint_step=4)])
  curves = report.curves_from_results(report.load([path]))
  assert [c.label for c in curves] == ["CPC (fixed) (step 0)", "CPC (fixed) (step 4)"]
  assert [c.checkpoint_step for c in curves] == [0, 4]


def test_write_report_writes_markdown_and_a_png(two_files):
  out = two_files / "out"
  text = report.write_report([str(two_files / "*.json")], str(out), paper=True)
  assert (out / "report.md").read_text() == text
  assert "## Top-1 accuracy (%)" in text and "## Top-5 accuracy (%)" in text
  assert "not measured here" in text
  png = (out / "report.png").read_bytes()
  assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_a_directory_means_its_results_json(tmp_path):
  for name in ("run_a", "run_b", "unfinished"):
    (tmp_path / name).mkdir()
  for name in ("run_a", "run_b"):
    _write(tmp_path / name / "results.json", "linear", [_row(name, 1.0, 0.6, 0.9)])
  assert report.expand([str(tmp_path / "run_a")]) == [str(tmp_path / "run_a/results.json")]
  assert report.expand([str(tmp_path / "*")]) == [
      str(tmp_path / "run_a/results.json"), str(tmp_path / "run_b/results.json")]
  with pytest.raises(report.ReportError, match="unfinished"):
    report.expand([str(tmp_path / "unfinished")])


def test_no_match_names_the_pattern(tmp_path):
  with pytest.raises(report.ReportError, match="nothing.*json"):
    report.load([str(tmp_path / "nothing*.json")])
  with pytest.raises(report.ReportError, match="missing.json"):
    report.load([str(tmp_path / "missing.json")])


def test_malformed_json_names_the_file(tmp_path):
  bad = tmp_path / "broken.json"
  bad.write_text("{not json")
  with pytest.raises(report.ReportError, match=r"broken\.json: not valid JSON"):
    report.load([str(bad)])


@pytest.mark.parametrize("change, message", [
    ({"protocol": "zero-shot"}, "protocol='zero-shot'"),
    ({"rows": "none"}, "rows must be a list"),
    ({"rows": [{"method": "x"}]}, r"rows\[0\] misses keys"),
    ({"rows": [_row("x", 1.0, 85.0, 0.9)]}, r"rows\[0\]\.top1=85\.0.*not percent"),
    ({"rows": [_row("x", 0.0, 0.5, 0.9)]}, r"label_fraction=0\.0"),
    ({"rows": [dict(_row("x", 1.0, 0.5, 0.9), split="train")]}, r"split='train'"),
])
def test_wrong_schema_names_the_file_and_the_field(tmp_path, change, message):
  path = tmp_path / "wrong.json"
  results = dict(protocol="efficient", dataset="d", encoder="e", config={}, rows=[])
  results.update(change)
  path.write_text(json.dumps(results))
  with pytest.raises(report.ReportError, match="wrong.json: .*" + message):
    report.load([str(path)])


def test_missing_top_level_key(tmp_path):
  path = tmp_path / "short.json"
  path.write_text(json.dumps({"protocol": "linear", "rows": []}))
  with pytest.raises(report.ReportError, match=r"short\.json: .*missing keys"):
    report.load([str(path)])


def test_duplicate_cells_are_refused(tmp_path):
  a = _write(tmp_path / "a.json", "efficient", [_row("CPC", 0.1, 0.5, 0.9)])
  b = _write(tmp_path / "b.json", "efficient", [_row("CPC", 0.1, 0.6, 0.9)])
  with pytest.raises(report.ReportError, match="b.json.*also in .*a.json"):
    report.curves_from_results(report.load([a, b]))


def test_files_without_rows_give_a_clear_error(tmp_path):
  path = _write(tmp_path / "empty.json", "efficient", [])
  with pytest.raises(report.ReportError, match="empty.json hold no rows of the test split"):
    report.write_report([path], str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out" / "report.md")


def test_only_rows_of_the_chosen_split_are_reported(tmp_path):
  path = _write(tmp_path / "eff.json", "efficient", [
      dict(_row("CPC v2 (frozen)", 0.1, 0.3, 0.6), split="validation"),
      _row("CPC v2 (frozen)", 0.1, 0.25, 0.55)])
  loaded = report.load([path])
  test = report.markdown_table(report.curves_from_results(loaded), "top1")
  assert test.splitlines()[2] == "| CPC v2 (frozen) | 25.0 |"
  val = report.markdown_table(report.curves_from_results(loaded, "validation"), "top1")
  assert val.splitlines()[2] == "| CPC v2 (frozen) | 30.0 |"
  only_val = _write(tmp_path / "val.json", "efficient", [
      dict(_row("CPC", 0.1, 0.3, 0.6), split="validation")])
  with pytest.raises(report.ReportError, match="no rows of the test split"):
    report.write_report([only_val], str(tmp_path / "out"))


def test_rename_methods_in_all_files_or_under_a_path():
  loaded = [("runs/a/results.json", {"rows": [_row("CPC", 1.0, 0.5, 0.9)]}),
            ("runs/b/results.json", {"rows": [_row("CPC", 1.0, 0.4, 0.8)]})]
  scoped = report.rename_methods(loaded, report.parse_renames(["CPC=CPC wd@runs/b"]))
  assert [d["rows"][0]["method"] for _, d in scoped] == ["CPC", "CPC wd"]
  assert loaded[1][1]["rows"][0]["method"] == "CPC"  # the input is not changed
  everywhere = report.rename_methods(loaded, report.parse_renames(["CPC = Ours"]))
  assert [d["rows"][0]["method"] for _, d in everywhere] == ["Ours", "Ours"]
  with pytest.raises(report.ReportError, match="matches no row"):
    report.rename_methods(loaded, report.parse_renames(["CPC=x@runs/c"]))
  with pytest.raises(report.ReportError, match="expected 'OLD=NEW'"):
    report.parse_renames(["=x"])


def _detection_file(path, method="CPC v2 resnet161 (fine-tuned)"):
  return _write(path, "detection", [
      dict(method=method, split="validation", num_train_examples=5011, map=0.6, ap=None),
      dict(method=method, split="test", num_train_examples=5011, map=0.7123,
           ap={"aeroplane": 0.8, "bicycle": None})], dataset="voc/2007", encoder="/runs/cpc")


def test_detection_results_become_a_table_3_section(tmp_path):
  path = _detection_file(tmp_path / "det.json")
  out = tmp_path / "report"
  text = report.write_report([path], str(out), paper=True)
  lines = text.splitlines()
  assert lines[0] == "# " + report.DETECTION_TITLE
  assert "| CPC v2 resnet161 (fine-tuned) | /runs/cpc | voc/2007 | 71.2 |" in lines
  assert "| Faster R-CNN on CPC v2, ResNet-161, fine-tuned (paper) | - | voc/2007 | 72.7 |" in lines
  assert "| Supervised ImageNet ResNet-152 (paper) | - | voc/2007 | 74.7 |" in lines
  assert "| CPC v2 resnet161 (fine-tuned) | 80.0 | - |" in lines  # per-class AP, null -> "-"
  assert "60.0" not in text  # validation rows stay out of a test report
  assert (out / "report.md").read_text() == text
  assert not (out / "report.png").exists()  # nothing to plot without classification rows


def test_detection_and_classification_files_together(two_files):
  _detection_file(two_files / "det.json")
  text = report.write_report([str(two_files / "*.json")], str(two_files / "out"))
  assert "## Top-1 accuracy (%)" in text and report.DETECTION_TITLE in text
  assert (two_files / "out" / "report.png").exists()


def test_aggregate_averages_repeated_cells_with_sample_std(tmp_path):
  for seed, top1 in enumerate((0.50, 0.56, 0.62)):
    _write(tmp_path / f"s{seed}.json", "efficient", [
        _row("CPC v2 (frozen)", 0.01, top1, 0.9), *([_row("CPC v2 (frozen)", 1.0, 0.8, 0.99)]
                                                    if seed == 0 else [])])
  loaded = report.load([str(tmp_path / "*.json")])
  (curve,) = report.curves_from_results(loaded, aggregate=True)
  cell = curve.points[0.01]
  assert cell["n"] == 3 and cell["top1"] == pytest.approx(0.56)
  assert cell["top1_std"] == pytest.approx(0.06)  # ddof=1: sqrt((0.06^2 * 2) / 2)
  assert curve.points[1.0] == {"top1": 0.8, "top5": 0.99}  # a single run stays as it is
  assert report.markdown_table([curve], "top1").splitlines()[-1] == (
      "| CPC v2 (frozen) | 56.0 ± 6.0 (n=3) | 80.0 |")
  text = report.write_report([str(tmp_path / "*.json")], str(tmp_path / "out"),
                             aggregate=True)
  assert "56.0 ± 6.0 (n=3)" in text
  assert os.path.getsize(tmp_path / "out" / "report.png") > 0
  with pytest.raises(report.ReportError, match="also in"):  # without aggregate: refused
    report.curves_from_results(loaded)
