"""The quickanalysis command refuses bad settings with a usage error, not a traceback."""

import os
import subprocess
import sys

from conftest import PROJECT


def run(args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=PROJECT, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=60,
    )


def test_bad_environment_setting_is_a_usage_error(tmp_path):
    result = run(["serve", "--root", str(tmp_path), "--no-demo"], env={"QA_PORT": "abc"})
    assert result.returncode == 2
    assert "invalid setting: QA_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_is_a_usage_error():
    result = run(["serve", "--port", "abc"])
    assert result.returncode == 2 and "--port" in result.stderr
