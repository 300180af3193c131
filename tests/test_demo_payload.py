"""The demo payload end to end: the real chain through `python -m gridpipe.payloads.demo` subprocesses.

simulate (4 gamma, 4 proton, 2 electron runs) -> training for energy (2 jobs, merged here with
PyTables) -> regressor -> training for classification with --estimate-energy -> classifier ->
DL2 (one job per run, merged here) -> performance. Models are judged on runs they never saw.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tables
import yaml

from gridpipe.analysis.render import environment, render

DEMO = [sys.executable, "-m", "gridpipe.payloads.demo"]
EVENTS = 200
GAMMA_ENERGY, GAMMA_CLASS, GAMMA_DL2 = (1, 2), (3,), (4,)
PROTON_CLASS, PROTON_DL2, ELECTRON_DL2 = (11, 12), (13, 14), (21, 22)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _argv(args: list[str | Path]) -> list[str]:
    return [*DEMO, *(str(a) for a in args)]


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """One demo action; its exit code and output are returned, not checked."""
    return subprocess.run(
        _argv(list(args)), cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def run_all(commands: list[list[str | Path]], cwd: Path) -> None:
    """Run demo actions in parallel (as the local backend would) and require every one to succeed."""
    procs = [
        subprocess.Popen(_argv(c), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    for command, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{command} failed ({proc.returncode}): {err}{out}"


def concat_tables(inputs: list[Path], output: Path) -> None:
    """Merge job outputs as download_and_merge would: copy the first, append the others' rows."""
    shutil.copyfile(inputs[0], output)
    with tables.open_file(output, "a") as merged:
        for path in inputs[1:]:
            with tables.open_file(path) as part:
                for table in part.walk_nodes("/", classname="Table"):
                    target = merged.get_node(table._v_pathname)
                    assert target.description._v_dtype == table.description._v_dtype
                    assert target.chunkshape == table.chunkshape
                    target.append(table.read())


def read(path: Path, node: str) -> np.ndarray:
    with tables.open_file(path) as h5:
        return h5.get_node(node).read()


def auc(labels: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by counting pairs (ties count half)."""
    pos, neg = score[labels == 1], score[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@dataclass
class Chain:
    root: Path
    configs: Path

    def sim(self, particle: str, run: int) -> Path:
        return self.root / "sim" / f"{particle}_run{run}.h5"

    @property
    def energy_training(self) -> Path:
        return self.root / "TRAINING_energy_tail_gamma_merged.h5"

    def class_training(self, particle: str) -> Path:
        return self.root / f"TRAINING_classification_tail_{particle}_merged.h5"

    def dl2_job(self, particle: str, run: int) -> Path:
        return self.root / "dl2_jobs" / f"DL2_{particle}_tail_run{run}.h5"

    def dl2(self, particle: str) -> Path:
        """The merged DL2 file named as performance.yaml's template_input_file expects it."""
        config = yaml.safe_load((self.configs / "performance.yaml").read_text())
        return self.root / "DL2" / config["General"]["template_input_file"].format(particle)


def simulate_args(particle: str, run_number: int, output: Path | str, seed: int = 7) -> list[str | Path]:
    what = ["--particle", particle, "--run", str(run_number), "--events", str(EVENTS)]
    return ["simulate", *what, "--seed", str(seed), "--output", output]


def _write_configs(root: Path) -> Path:
    configs = root / "configs"
    configs.mkdir()
    env = environment()
    context = {"name": "demo_test", "mode": "tail", "analysis_path": str(root)}
    for name in ("analysis", "RandomForestRegressor", "RandomForestClassifier", "performance"):
        (configs / f"{name}.yaml").write_text(render(env, f"configs/{name}.yaml.j2", context))
    return configs


def _simulate(c: Chain) -> None:
    runs = [("gamma", r) for r in GAMMA_ENERGY + GAMMA_CLASS + GAMMA_DL2]
    runs += [("proton", r) for r in PROTON_CLASS + PROTON_DL2] + [("electron", r) for r in ELECTRON_DL2]
    commands = [simulate_args(p, r, c.sim(p, r)) for p, r in runs]
    run_all(commands, c.root)


def _training(c: Chain) -> None:
    analysis = c.configs / "analysis.yaml"
    jobs = [c.root / "training_jobs" / f"energy_gamma_run{r}.h5" for r in GAMMA_ENERGY]
    run_all(
        [
            ["training", "--config-file", analysis, "--outfile", job, "--infile-list", c.sim("gamma", r)]
            for job, r in zip(jobs, GAMMA_ENERGY, strict=True)
        ],
        c.root,
    )
    concat_tables(jobs, c.energy_training)
    reg = c.configs / "RandomForestRegressor.yaml"
    run_all(
        [["train-model", "--config-file", reg, "--infile", c.energy_training, "--outdir", c.root / "reg"]],
        c.root,
    )
    estimate = ["--estimate-energy", "--regressor-dir", c.root / "reg"]
    run_all(
        [
            ["training", "--config-file", analysis, "--outfile", c.class_training("gamma"), *estimate,
             "--infile-list", *(c.sim("gamma", r) for r in GAMMA_CLASS)],
            ["training", "--config-file", analysis, "--outfile", c.class_training("proton"), *estimate,
             "--infile-list", *(c.sim("proton", r) for r in PROTON_CLASS)],
        ],
        c.root,
    )  # fmt: skip
    cls = c.configs / "RandomForestClassifier.yaml"
    run_all(
        [["train-model", "--config-file", cls, "--infile", c.class_training("gamma"),
          "--bkg-infile", c.class_training("proton"), "--outdir", c.root / "cls"]],
        c.root,
    )  # fmt: skip


def _dl2_and_performance(c: Chain) -> None:
    models = ["--regressor-dir", c.root / "reg", "--classifier-dir", c.root / "cls"]
    analysis = c.configs / "analysis.yaml"
    jobs = {"gamma": GAMMA_DL2, "proton": PROTON_DL2, "electron": ELECTRON_DL2}
    dl2 = ["dl2", "--config-file", analysis, *models]
    run_all(
        [
            [*dl2, "--outfile", c.dl2_job(p, r), "--infile-list", c.sim(p, r)]
            for p, runs in jobs.items()
            for r in runs
        ],
        c.root,
    )
    (c.root / "DL2").mkdir()
    for particle, runs in jobs.items():
        concat_tables([c.dl2_job(particle, r) for r in runs], c.dl2(particle))
    perf = c.configs / "performance.yaml"
    run_all(
        [["performance", "--config-file", perf, "--indir", c.root / "DL2", "--outdir", c.root / "DL3"]],
        c.root,
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("demo")
    c = Chain(root, _write_configs(root))
    _simulate(c)
    _training(c)
    _dl2_and_performance(c)
    return c


def test_simulation_files_hold_a_small_physical_toy(chain: Chain) -> None:
    gamma = chain.sim("gamma", 1)
    assert 20_000 < gamma.stat().st_size < 300_000
    with tables.open_file(gamma) as h5:
        attrs = h5.root._v_attrs
        assert (int(attrs.run), str(attrs.particle)) == (1, "gamma")
        events = h5.root.simulation.events.read()
        lst = h5.root.images.LSTCam.read()
        assert h5.root.images.NectarCam.nrows > 0
    assert len(events) == EVENTS and len(np.unique(events["event_id"])) == EVENTS
    assert events["true_energy"].min() >= 0.03 and events["true_energy"].max() <= 100.0
    near = lst["impact_dist"] < 100
    energy = events["true_energy"][np.searchsorted(events["event_id"], lst["event_id"])]
    corr = np.corrcoef(np.log10(lst["hillas_intensity"][near]), np.log10(energy[near]))[0, 1]
    assert corr > 0.8
    proton = read(chain.sim("proton", 11), "/images/NectarCam")
    assert np.median(proton["hillas_width"]) > 1.3 * np.median(
        read(gamma, "/images/NectarCam")["hillas_width"]
    )


def test_simulate_is_deterministic_per_seed(chain: Chain, tmp_path: Path) -> None:
    run_all([simulate_args("gamma", 1, "again.h5"), simulate_args("gamma", 1, "other.h5", seed=8)], tmp_path)
    assert (tmp_path / "again.h5").read_bytes() == chain.sim("gamma", 1).read_bytes()
    ours = read(chain.sim("gamma", 1), "/simulation/events")["true_energy"]
    assert not np.array_equal(read(tmp_path / "other.h5", "/simulation/events")["true_energy"], ours)


def _images_per_event(path: Path) -> dict[str, np.ndarray]:
    with tables.open_file(path) as h5:
        assert {n._v_name for n in h5.list_nodes("/", classname="Table")} == {"LSTCam", "NectarCam"}
        for table in h5.list_nodes("/", classname="Table"):
            assert table.filters.complevel == 5 and table.filters.complib == "zlib"
            assert table.chunkshape == (1024,)
        return {t._v_name: t.read() for t in h5.list_nodes("/", classname="Table")}


def test_training_tables_apply_the_selection(chain: Chain) -> None:
    merged = _images_per_event(chain.energy_training)
    parts = [read(chain.root / "training_jobs" / f"energy_gamma_run{r}.h5", "/LSTCam") for r in GAMMA_ENERGY]
    assert len(merged["LSTCam"]) == sum(len(p) for p in parts) > 100
    assert set(np.unique(merged["LSTCam"]["obs_id"])) == set(GAMMA_ENERGY)
    rows = np.concatenate(
        [
            merged["LSTCam"][["obs_id", "event_id", "n_tel"]],
            merged["NectarCam"][["obs_id", "event_id", "n_tel"]],
        ]
    )
    _, inverse, counts = np.unique(rows[["obs_id", "event_id"]], return_inverse=True, return_counts=True)
    assert np.array_equal(rows["n_tel"], counts[inverse]) and rows["n_tel"].min() >= 2
    for cam, table in merged.items():
        assert table["hillas_intensity"].min() >= 50.0, cam
        assert "reco_energy" not in table.dtype.names
    proton = _images_per_event(chain.class_training("proton"))["NectarCam"]
    assert set(proton["true_particle_id"]) == {101}
    _, first, inverse = np.unique(proton[["obs_id", "event_id"]], return_index=True, return_inverse=True)
    assert np.all(proton["reco_energy"] > 0)
    assert np.array_equal(proton["reco_energy"], proton["reco_energy"][first][inverse])


def test_models_are_npz_that_say_what_they_are(chain: Chain) -> None:
    names = sorted(p.name for p in (chain.root / "reg").iterdir())
    assert names == [
        "regressor_LSTCam_RandomForestRegressor.npz",
        "regressor_NectarCam_RandomForestRegressor.npz",
        "regressor_RandomForestRegressor_summary.yaml",
    ]
    with np.load(
        chain.root / "cls" / "classifier_LSTCam_RandomForestClassifier.npz", allow_pickle=False
    ) as data:
        assert "not a forest" in str(data["algorithm"])
        assert str(data["method_name"]) == "sklearn.ensemble.RandomForestClassifier"
    summary = yaml.safe_load(
        (chain.root / "cls" / "classifier_RandomForestClassifier_summary.yaml").read_text()
    )
    assert all(cam["test"]["auc"] > 0.7 for cam in summary["cameras"].values())


def test_regressor_beats_a_constant_on_unseen_runs(chain: Chain) -> None:
    train = read(chain.energy_training, "/NectarCam")["true_energy"]
    events = read(chain.dl2("gamma"), "/dl2/events")
    assert len(events) > 30
    truth = np.log10(events["true_energy"])
    model_rms = np.sqrt(np.mean((np.log10(events["reco_energy"]) - truth) ** 2))
    constant_rms = np.sqrt(np.mean((np.mean(np.log10(train)) - truth) ** 2))
    assert model_rms < 0.5 * constant_rms


def test_classifier_separates_unseen_gammas_from_protons(chain: Chain) -> None:
    gammas, protons = read(chain.dl2("gamma"), "/dl2/events"), read(chain.dl2("proton"), "/dl2/events")
    scores = np.concatenate([gammas["gammaness"], protons["gammaness"]])
    assert np.all((scores >= 0) & (scores <= 1))
    labels = np.concatenate([np.ones(len(gammas)), np.zeros(len(protons))])
    assert len(protons) > 30 and auc(labels, scores) > 0.8


def test_dl2_rows_match_the_simulation(chain: Chain) -> None:
    merged = read(chain.dl2("proton"), "/dl2/events")
    assert len(merged) == sum(len(read(chain.dl2_job("proton", r), "/dl2/events")) for r in PROTON_DL2)
    for run_number in PROTON_DL2:
        mine = merged[merged["obs_id"] == run_number]
        sim = read(chain.sim("proton", run_number), "/simulation/events")
        at = np.searchsorted(sim["event_id"], mine["event_id"])
        assert np.array_equal(sim["event_id"][at], mine["event_id"])
        assert np.array_equal(sim["true_energy"][at], mine["true_energy"])
        assert np.all((mine["n_tel"] >= 2) & (mine["n_tel"] <= sim["n_images"][at]))
        assert len(np.unique(mine["event_id"])) == len(mine)
    assert set(merged["true_particle_id"]) == {101}


def test_performance_writes_curves_dl3_and_a_png(chain: Chain) -> None:
    dl3 = chain.root / "DL3"
    curves = read(dl3 / "performance.h5", "/performance/curves")
    assert len(curves) == 20  # 0.02-200 TeV, 5 bins per decade
    gammas = read(chain.dl2("gamma"), "/dl2/events")
    assert curves["n_gamma"].sum() == len(gammas)
    filled = curves["n_gamma"] >= 10
    assert filled.any() and np.all(curves["energy_resolution"][filled] < 0.5)
    for column in ("gamma_efficiency", "proton_rejection", "electron_rejection"):
        values = curves[column][np.isfinite(curves[column])]
        assert len(values) and np.all((values >= 0) & (values <= 1)), column
    for particle in ("gamma", "proton", "electron"):
        kept = read(dl3 / "DL3_events.h5", f"/events/{particle}")
        dl2 = read(chain.dl2(particle), "/dl2/events")
        assert len(kept) == int(np.sum(dl2["gammaness"] >= 0.5)) and np.all(kept["gammaness"] >= 0.5)
    assert (dl3 / "performance.png").read_bytes().startswith(PNG_SIGNATURE)


SIM = ["simulate", "--run", "1", "--seed", "1"]
TRAIN = ["training", "--config-file", "analysis.yaml", "--outfile", "o.h5"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        ([*SIM, "--particle", "muon", "--events", "5", "--output", "x.h5"], 2, "muon"),
        ([*SIM, "--particle", "gamma", "--events", "5"], 2, "--output"),
        ([*SIM, "--particle", "gamma", "--events", "0", "--output", "x.h5"], 2, "--events"),
        (["reconstruct"], 2, "reconstruct"),
        (
            ["training", "--config-file", "typo.yaml", "--outfile", "o.h5", "--infile-list", "in.h5"],
            2,
            "min_tell",
        ),
        ([*TRAIN, "--estimate-energy", "--infile-list", "in.h5"], 2, "--regressor-dir"),
        ([*TRAIN, "--infile-list", "missing.h5"], 1, "missing.h5"),
    ],
)
def test_bad_input_gives_one_line_and_an_exit_code(
    tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    (tmp_path / "analysis.yaml").write_text("General: {cam_id_list: [LSTCam]}\n")
    (tmp_path / "typo.yaml").write_text("General: {cam_id_list: [LSTCam]}\nReconstruction: {min_tell: 2}\n")
    done = run(*args, cwd=tmp_path)
    assert done.returncode == code
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and needle in lines[0], done.stderr
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "x.h5").exists()
