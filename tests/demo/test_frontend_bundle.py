"""The committed browser bundle of the demo page is the one scripts/build-demo-frontend.sh
builds from the pinned npm lock: its recorded sha256, source and versions must all match."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "demo" / "frontend"
DIST = FRONTEND / "dist"
PACKAGES = ("@sentry/browser", "posthog-js", "esbuild")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def manifest() -> dict[str, object]:
    data: dict[str, object] = json.loads((DIST / "manifest.json").read_text())
    return data


@pytest.fixture(scope="module")
def lock() -> dict[str, dict[str, dict[str, str]]]:
    data: dict[str, dict[str, dict[str, str]]] = json.loads(
        (FRONTEND / "package-lock.json").read_text())
    return data


def test_the_committed_bundle_is_the_one_the_manifest_records(
        manifest: dict[str, object]) -> None:
    bundle = DIST / str(manifest["bundle"])
    assert sha256(bundle) == manifest["sha256"]
    assert bundle.stat().st_size == manifest["bytes"]


def test_the_bundle_was_built_from_the_committed_lock_and_source(
        manifest: dict[str, object]) -> None:
    # a changed lock or src/main.js without a rebuild leaves a stale bundle: refuse it
    assert manifest["package_lock_sha256"] == sha256(FRONTEND / "package-lock.json")
    assert manifest["source_sha256"] == sha256(FRONTEND / "src" / "main.js")


def test_the_sdk_versions_are_pinned_exactly_and_match_the_lock(
        manifest: dict[str, object], lock: dict[str, dict[str, dict[str, str]]]) -> None:
    package = json.loads((FRONTEND / "package.json").read_text())
    pinned = {**package["dependencies"], **package["devDependencies"]}
    recorded = manifest["packages"]
    assert isinstance(recorded, dict)
    for name in PACKAGES:
        locked = lock["packages"][f"node_modules/{name}"]
        assert pinned[name] == locked["version"] == recorded[name], name
        assert locked["integrity"].startswith("sha512-")  # npm ci verifies every tarball


def test_every_bundled_package_is_locked_and_its_licence_travels_with_the_bundle(
        manifest: dict[str, object], lock: dict[str, dict[str, dict[str, str]]]) -> None:
    bundled = manifest["bundled"]
    assert isinstance(bundled, dict) and {"@sentry/browser", "posthog-js"} <= set(bundled)
    notices = (DIST / "THIRD-PARTY-LICENSES.txt").read_text(encoding="utf-8")
    for name, version in bundled.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
        assert f"{name} {version} (" in notices, name


def test_the_bundle_carries_both_real_sdks_at_the_locked_versions(
        manifest: dict[str, object]) -> None:
    text = (DIST / "demo-frontend.js").read_text(encoding="utf-8")
    versions = manifest["packages"]
    assert isinstance(versions, dict)
    assert "sentry.javascript." in text and f'"{versions["@sentry/browser"]}"' in text
    assert f'"{versions["posthog-js"]}"' in text and "$exception" in text
