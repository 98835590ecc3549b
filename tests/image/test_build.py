# SPDX-License-Identifier: MIT
"""scripts/image.sh builds the image from the committed HEAD (conftest.py runs it once, before
collection, so that where it cannot the suite is this one test, skipped or failed, saying
why)."""

import pytest

from conftest import BUILD_PROBLEM, BUILD_SECONDS, IMAGE


def test_image_builds():
    if BUILD_PROBLEM:
        kind, text = BUILD_PROBLEM
        if kind == "skip":
            pytest.skip(f"image suite skipped: {text}")
        pytest.fail(f"the image did not build: {text}", pytrace=False)
    assert IMAGE
    print(f"{IMAGE} ready in {BUILD_SECONDS:.1f}s (scripts/image.sh --reuse)")
