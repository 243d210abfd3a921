"""The app's HTTP side: two concurrent API calls both succeed and agree; only the app's files are served."""

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # an app subprocess


def test_two_concurrent_api_calls_both_succeed_and_agree(app_url, test_image, rgb_image):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    jobs = [
        client.submit(
            handle_file(str(test_image)), "primedepth-mini", "none", "", 0, 1.0, 10.0, False, api_name="/predict_image"
        )
        for _ in range(2)
    ]
    results = [job.result(timeout=300) for job in jobs]
    depths = []
    for _color, label, _compare, view, downloads in results:
        assert view.endswith(".glb")
        assert "primedepth-mini" in label
        npy = next(p for p in downloads if p.endswith(".npy"))
        depths.append(np.load(npy))
    assert depths[0].shape == rgb_image.shape[:2]
    np.testing.assert_array_equal(depths[0], depths[1])  # same image, same seed: the same map, run after run


@pytest.mark.parametrize(
    "target", ["/etc/passwd", str(Path(__file__).resolve()), str(Path(__file__).resolve().parents[2] / "README.md")]
)
def test_files_outside_the_app_folder_are_never_served(app_url, target):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{app_url}/gradio_api/file={target}", timeout=30)
    assert err.value.code == 403


def test_the_terminal_names_the_option_for_a_public_link(app_url):
    printed = app_url.log.read_text()
    assert f"Running on local URL:  {app_url}" in printed and "start the app with --share" in printed
    assert "share=True" not in printed and "launch()" not in printed
