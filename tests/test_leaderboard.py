import math

import pandas as pd

from benchmark import leaderboard as lb


def _df():
    rows = []
    for model, gain in (("bicubic", 0.0), ("tt", 0.5)):
        for variant, drop in (("clean", 0.0), ("lr", 0.4), ("shuffle:4", 0.2)):
            for level in (1, 2):
                for img, base in (("g0", 30.0), ("g1", 32.0)):
                    v = base + gain - (drop if model == "tt" else 0) - 0.1 * (level - 1) * (model == "tt")
                    rows.append({"suite": "s", "model": model, "weights": "none", "dataset": "d", "split": "test",
                                 "variant": variant, "level": level, "image": f"{img}_{level}", "metric": "psnr_y",
                                 "value": v, "higher_is_better": True, "status": "ok", "reason": "",
                                 "protocol": "refsr-standard", "protocol_hash": "h", "device": "cpu",
                                 "dtype": "float32", "seed": 0, "git_sha": "x", "dataset_hash": "y", "versions": "{}"})
    rows.append({**rows[0], "metric": "musiq", "value": math.nan, "status": "unavailable",
                 "reason": "pyiqa not installed"})
    return pd.DataFrame(rows)


def test_headline_means_and_unavailable_cells():
    h = lb.headline(_df())
    tt = h[h["model"] == "tt"].iloc[0]
    assert tt["psnr_y"] == 31.5 and tt["level"] == 1 and tt["images"] == 2
    bic = h[h["model"] == "bicubic"].iloc[0]
    assert math.isnan(bic["musiq"])  # a status never goes into a value cell
    assert bic["notes"] == "musiq: unavailable: pyiqa not installed"


def test_drift_rows_have_a_protocol_column():
    df = _df()
    drift = df[(df["variant"] == "clean")].assign(protocol="ttsr", value=lambda d: d["value"] + 0.25)
    table = lb.protocol_drift(pd.concat([df, drift], ignore_index=True))
    tt = table[table["model"] == "tt"].set_index("protocol")["psnr_y"]
    assert list(tt.index) == ["refsr-standard", "ttsr"]  # the run's own protocol first
    assert math.isclose(tt["ttsr"] - tt["refsr-standard"], 0.25)
    assert "ttsr" not in set(lb.headline(pd.concat([df, drift])).get("protocol", []))


def test_per_level_and_robustness_drop():
    pl = lb.per_level(_df())
    tt = pl[pl["model"] == "tt"].iloc[0]
    assert math.isclose(tt["L1"], 31.5) and math.isclose(tt["L2"], 31.4) and math.isclose(tt["LR-as-ref"], 31.1)
    rob = lb.robustness(_df())
    row = rob[(rob["model"] == "tt") & (rob["variant"] == "shuffle:4")].iloc[0]
    assert math.isclose(row["drop_vs_clean"], 0.2)


def test_markdown_rounds_by_metric_and_shows_direction():
    md = lb.to_markdown(lb.per_level(_df()))
    assert "31.50" in md and sum(line.startswith("|---") for line in md.splitlines()) == 1
    head = lb.to_markdown(lb.headline(_df()))
    assert "PSNR-Y (dB) ↑" in head.splitlines()[0]


def test_the_run_protocol_is_not_taken_from_row_order():
    df = _df()
    drift = df[df["metric"] == "psnr_y"].assign(protocol="basicsr")  # sorts before refsr-standard
    both = pd.concat([drift, df], ignore_index=True).sort_values(["protocol", "model"])
    assert lb.main_protocol(both) == "refsr-standard" and lb.main_protocol(both, "basicsr") == "basicsr"
    assert "musiq" in lb.headline(both).columns
