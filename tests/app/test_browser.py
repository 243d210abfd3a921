"""The app in a real headless Chromium: upload, wait for the depth and the 3D view, check sizes and downloads, a
non-image, and a clip through the video tab."""

import io
from urllib.parse import unquote

import numpy as np
import pytest
import trimesh
from PIL import Image

pytestmark = pytest.mark.slow  # a browser and an app subprocess

WAIT_MS = 180_000


def _open(page, url):
    page.goto(url, timeout=WAIT_MS)
    page.wait_for_selector("#input-image input[type=file]", state="attached", timeout=WAIT_MS)


def _natural_size(page, selector):
    page.wait_for_function(
        f"() => {{ const i = document.querySelector('{selector}'); return i && i.complete && i.naturalWidth > 0 }}",
        timeout=WAIT_MS,
    )
    return page.eval_on_selector(selector, "i => [i.naturalWidth, i.naturalHeight]")


def test_upload_shows_depth_at_input_size_with_valid_downloads(app_url, browser_page, test_image, rgb_image):
    page = browser_page
    _open(page, app_url)
    page.set_input_files("#input-image input[type=file]", str(test_image))
    page.wait_for_selector("#input-image img", timeout=WAIT_MS)  # the upload reached the server and came back
    page.click("#predict")

    h, w = rgb_image.shape[:2]
    assert _natural_size(page, "#depth img") == [w, h]
    label = page.inner_text("#run-label")
    assert "primedepth-mini" in label and f"output {w} x {h} px" in label and "rendered scenes" in label

    page.wait_for_selector("#downloads a", timeout=WAIT_MS)
    files = {}
    for href in page.eval_on_selector_all("#downloads a", "as => as.map(a => a.href)"):
        response = page.request.get(href)
        assert response.ok, href
        files[unquote(href).rsplit("/", 1)[-1]] = response.body()
    names = sorted(files)
    assert names == ["scene.glb", "scene.npy", "scene.ply", "scene_16bit.png", "scene_color.png", "scene_side.png"], (
        names
    )
    depth = np.load(io.BytesIO(files["scene.npy"]), allow_pickle=False)
    assert depth.shape == (h, w) and depth.dtype == np.float32 and np.isfinite(depth).all()
    png16 = np.asarray(Image.open(io.BytesIO(files["scene_16bit.png"])))
    norm = (depth - depth.min()) / (depth.max() - depth.min())
    np.testing.assert_allclose(png16 / 65535.0, norm, atol=1 / 65535)  # the 16-bit PNG is this very map
    color = Image.open(io.BytesIO(files["scene_color.png"]))
    assert color.mode == "RGB" and color.size == (w, h)
    cloud = trimesh.load(io.BytesIO(files["scene.ply"]), file_type="ply")
    assert len(cloud.vertices) == h * w  # one point per pixel, coloured like the input
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3].reshape(h, w, 3), rgb_image)
    surface = trimesh.load(io.BytesIO(files["scene.glb"]), file_type="glb", force="mesh")
    assert 0 < len(surface.vertices) <= h * w and len(surface.faces) > 0
    # the 3D view drew the mesh into its canvas (white background, coloured surface)
    page.wait_for_selector("#view-3d canvas", timeout=WAIT_MS)
    page.locator("#view-3d").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('#view-3d canvas').width > 0", timeout=WAIT_MS)
    drawn = 0.0
    for _ in range(60):
        page.wait_for_timeout(500)
        shot = np.asarray(Image.open(io.BytesIO(page.locator("#view-3d canvas").screenshot())).convert("RGB"))
        drawn = float((shot.astype(int).sum(-1) < 720).mean())
        if drawn > 0.02:
            break
    assert drawn > 0.02, f"the 3D view stayed empty ({drawn:.3%} of its pixels drawn)"
    # the RGB | depth slider holds the input and the colour map
    assert _natural_size(page, "#compare img") in ([w, h],)


def test_non_image_upload_shows_a_clear_message(app_url, browser_page, not_an_image):
    page = browser_page
    _open(page, app_url)
    page.set_input_files("#input-image input[type=file]", str(not_an_image))
    page.click("#predict")
    message = page.get_by_text("notes.png: not an image file")
    message.wait_for(timeout=WAIT_MS)
    assert "Traceback" not in page.content()


def test_video_tab_turns_a_clip_into_a_depth_video(app_url, browser_page, clip, tmp_path):
    page = browser_page
    _open(page, app_url)
    page.get_by_role("tab", name="Video").click()
    page.set_input_files("#input-video input[type=file]", str(clip))
    page.wait_for_selector("#input-video video", timeout=WAIT_MS)
    page.click("#predict-video")
    # the progress indicator counts predicted frames while the clip runs
    page.wait_for_function(
        "() => /\\d+\\/8 frame/.test(document.querySelector('#depth-video').innerText)", timeout=WAIT_MS, polling=100
    )
    page.wait_for_function(
        "() => { const v = document.querySelector('#depth-video video'); return v && v.readyState >= 1 }",
        timeout=WAIT_MS,
    )
    assert page.eval_on_selector("#depth-video video", "v => [v.videoWidth, v.videoHeight]") == [64, 48]
    label = page.inner_text("#video-label")
    assert "8 frames" in label and "stabilised" in label and "primedepth-mini" in label
    page.screenshot(path=str(tmp_path / "video.png"), full_page=True)
