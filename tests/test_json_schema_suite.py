"""The argument validator against the official JSON-Schema-Test-Suite (draft 2020-12 and draft 7).

Every required group runs through ``ArgumentsValidator`` (what the manager uses), checking both
the fast ``is_valid`` answer and that ``errors()`` agrees with it, so every error kind the suite
can produce also goes through our message formatting. The ``optional/`` folders are not run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tamma_tools.errors import ToolDefinitionError
from tamma_tools.schema.validator import ArgumentsValidator, Draft
from tests.conftest import CONFORMANCE_DIR

SUITE_DIR = CONFORMANCE_DIR / "json-schema-test-suite" / "tests"
DRAFTS: dict[str, Draft] = {"draft2020-12": "draft2020-12", "draft7": "draft7"}

_REMOTES = (
    "every group $refs documents the suite serves from its remotes/ folder at "
    "http://localhost:1234; those are not vendored and our validators compile offline on purpose "
    "(no fetching at registration), so the refs fail to resolve with a typed error instead"
)
SKIPPED_FILES: dict[tuple[str, str], str] = {
    ("draft2020-12", "refRemote.json"): _REMOTES,
    ("draft7", "refRemote.json"): _REMOTES,
}
"""Whole files skipped, with the reason."""

_DYNAMIC_REMOTE = "the schema $refs a remote document at http://localhost:1234 (offline by design)"
SKIPPED_GROUPS: dict[tuple[str, str, str], str] = {
    (
        "draft2020-12",
        "dynamicRef.json",
        "strict-tree schema, guards against misspelled properties",
    ): _DYNAMIC_REMOTE,
    (
        "draft2020-12",
        "dynamicRef.json",
        "tests for implementation dynamic anchor and reference link",
    ): _DYNAMIC_REMOTE,
    (
        "draft2020-12",
        "dynamicRef.json",
        "$ref and $dynamicAnchor are independent of order - $defs first",
    ): _DYNAMIC_REMOTE,
    (
        "draft2020-12",
        "dynamicRef.json",
        "$ref and $dynamicAnchor are independent of order - $ref first",
    ): _DYNAMIC_REMOTE,
    (
        "draft2020-12",
        "dynamicRef.json",
        "$ref to $dynamicRef finds detached $dynamicAnchor",
    ): _DYNAMIC_REMOTE,
    (
        "draft2020-12",
        "vocabulary.json",
        "schema that uses custom metaschema with with no validation vocabulary",
    ): "its $schema is a custom meta-schema served from http://localhost:1234; offline, the "
    "validator cannot read which vocabularies it turns off and applies the default ones",
}
"""Individual groups skipped, with the reason. No individual test case is skipped."""


def _groups() -> list[Any]:
    params = []
    for draft in DRAFTS:
        for path in sorted((SUITE_DIR / draft).glob("*.json")):
            for group in json.loads(path.read_text(encoding="utf-8")):
                key = (draft, path.name, group["description"])
                reason = SKIPPED_FILES.get((draft, path.name)) or SKIPPED_GROUPS.get(key)
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                params.append(
                    pytest.param(
                        draft, group, id=f"{draft}/{path.name}/{group['description']}", marks=marks
                    )
                )
    return params


def test_suite_is_present_and_complete() -> None:
    # The manifest says 144 files; the required (non-optional) ones of both drafts must be here.
    manifest = json.loads((SUITE_DIR.parent / "MANIFEST.json").read_text(encoding="utf-8"))
    assert manifest
    for draft in DRAFTS:
        names = {p.name for p in (SUITE_DIR / draft).glob("*.json")}
        assert {"ref.json", "type.json", "additionalProperties.json", "anyOf.json"} <= names


@pytest.mark.parametrize(("draft", "group"), _groups())
def test_group(draft: Draft, group: dict[str, Any]) -> None:
    validator = ArgumentsValidator(group["schema"], draft=DRAFTS[draft])
    wrong = []
    for case in group["tests"]:
        valid = validator.is_valid(case["data"])
        issues = validator.errors(case["data"])
        if valid != case["valid"]:
            wrong.append(f"is_valid: {case['description']}: expected {case['valid']}")
        if (not issues) != case["valid"]:
            wrong.append(f"errors(): {case['description']}: {issues}")
        for issue in issues:
            assert issue.code and issue.message and issue.path
    assert not wrong, wrong


def test_skips_are_current() -> None:
    """A skip whose group disappeared from the suite (or stopped needing the skip) is stale."""
    present = set()
    for draft in DRAFTS:
        for path in (SUITE_DIR / draft).glob("*.json"):
            for group in json.loads(path.read_text(encoding="utf-8")):
                present.add((draft, path.name, group["description"]))
    assert set(SKIPPED_GROUPS) <= present
    for draft, name in SKIPPED_FILES:
        assert (SUITE_DIR / draft / name).is_file()


@pytest.mark.parametrize("draft", list(DRAFTS))
def test_remote_refs_are_refused_offline(draft: Draft) -> None:
    """What the skipped groups need is refused with a typed error and no request is made."""
    groups = json.loads((SUITE_DIR / draft / "refRemote.json").read_text(encoding="utf-8"))
    refused = 0
    for group in groups:
        try:
            ArgumentsValidator(group["schema"], draft=DRAFTS[draft])
        except ToolDefinitionError as exc:
            assert exc.code == "invalid_parameters_schema"
            assert "localhost:1234" in exc.message
            refused += 1
    assert refused >= len(groups) - 2
