"""The MLflow UI, checked in a real browser: a sweep logged to `mlflow server`, then its pages
opened in headless Chromium. Screenshots go to tests/artifacts/ for a person to look at."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from pipeline import cli

from ..conftest import ROOT, tiny_sweep, write_experiment
from ..webdriver import chromium, free_port

ARTIFACTS = ROOT / "tests" / "artifacts"
SWEEP = tiny_sweep("ui", "    train.lr: {grid: [0.01, 0.1]}\n")
MISSING = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"{' and '.join(MISSING)} not installed (`make test` installs the "
                          "Debian packages chromium and chromium-driver; apt-get failed here)")


@pytest.fixture
def mlflow_server(workdir):
    """`mlflow server` on 127.0.0.1 with a SQLite store and served artifacts in workdir."""
    port = free_port()
    log = (workdir / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}"],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (workdir / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "mlflow server not healthy after 90 s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_mlflow_ui_shows_the_sweep_its_trials_and_its_plots(workdir, ray_local, mlflow_server,
                                                            capsys) -> None:
    exp_file = write_experiment(workdir, SWEEP)
    assert cli.main(["tune", str(exp_file), "--set", f"tracking.uri={mlflow_server}"]) == 0
    assert "registered as champion" in capsys.readouterr().out  # the registry over REST too
    client = MlflowClient(mlflow_server)
    experiment_id = client.get_experiment_by_name("ui").experiment_id
    runs = client.search_runs([experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    kids = [r.info.run_name for r in runs if r is not parent]
    assert len(kids) == 2

    with chromium(failure_shot=ARTIFACTS / "mlflow_failed_find.png") as browser:
        browser.open(f"{mlflow_server}/#/experiments/{experiment_id}/runs")
        browser.find(f"//a[.//text()='{parent.info.run_name}']")
        assert not any(kid in browser.source() for kid in kids)  # nested under the parent
        browser.click(f"//div[@row-id='{parent.info.run_id}']"
                      "//button[contains(@data-component-id, 'runnamecellrenderer')]")
        for kid in kids:
            browser.find(f"//a[.//text()='{kid}']")
        runs_png = browser.screenshot(ARTIFACTS / "mlflow_experiment_runs.png")

        browser.open(f"{mlflow_server}/#/experiments/{experiment_id}/runs/"
                     f"{parent.info.run_id}/artifacts")
        for name in ("plots", "best_config.yaml", "results.csv", "best_checkpoint"):
            browser.find(f"//*[text()='{name}']")
        browser.click("//*[text()='plots']")
        for plot in ("convergence.png", "convergence_time.png", "param_train.lr.png"):
            browser.find(f"//*[text()='{plot}']")
        browser.click("//*[text()='convergence.png']")
        browser.find("//img[@alt='plots/convergence.png']")  # the preview
        artifacts_png = browser.screenshot(ARTIFACTS / "mlflow_parent_artifacts.png")

        browser.open(f"{mlflow_server}/#/models/ui")
        browser.find("//a[text()='Version 1']")
        browser.find("//*[contains(., 'champion') and not(*[contains(., 'champion')])]")  # alias
        model_png = browser.screenshot(ARTIFACTS / "mlflow_registered_model.png")
    for shot in (runs_png, artifacts_png, model_png):
        assert shot.stat().st_size > 20_000
        print(f"screenshot: {shot}")
