"""The ``tamma-tools`` command, run as a subprocess: output and exit codes users script against."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

EXIT_PROBLEM, EXIT_CONFIG = 1, 3


def run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("TAMMA_TOOLS_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tamma_tools.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    (workspace / "notes").mkdir(parents=True)
    (workspace / "notes" / "todo.md").write_text("- ship it\n")
    (workspace / ".env").write_text("TOKEN=secret\n")
    (tmp_path / "tamma-tools.toml").write_text(
        '[sandbox]\nroots = ["workspace"]\nblocked_paths = [".env"]\n'
        '[roles]\nagent = ["file:read", "file:write"]\n'
        '[caller]\nuser_id = "cli-test"\nroles = ["agent"]\n'
        '[audit]\npath = "audit.db"\n'
    )
    return tmp_path


def call(call_id: str, name: str, arguments: dict[str, object]) -> dict[str, object]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}  # fmt: skip


def completion(*calls: dict[str, object]) -> dict[str, object]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "content": None, "tool_calls": list(calls)}}],
    }  # fmt: skip


def test_help_lists_every_command(tmp_path: Path) -> None:
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in (
        "tools",
        "exec",
        "chat",
        "demo",
        "audit",
        "policy",
        "sandbox",
        "serve",
        "config",
    ):
        assert command in proc.stdout


def test_config_check_accepts_a_good_file(project: Path) -> None:
    proc = run("config", "check", "tamma-tools.toml", cwd=project)
    assert proc.returncode == 0 and "valid" in proc.stdout


def test_config_check_names_every_bad_key(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        '[sandbox]\nrootz = ["x"]\ndefault_isolation = "vm"\n[network]\nallowed_ports = [70000]\n'
    )
    proc = run("config", "check", "bad.toml", cwd=tmp_path)
    assert proc.returncode == EXIT_CONFIG
    assert "sandbox.rootz: unknown key" in proc.stderr
    assert "sandbox.default_isolation: 'vm' is not allowed" in proc.stderr
    assert "network.allowed_ports" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_broken_config_file_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("[sandbox\nroots = 1\n")
    proc = run("--config", "broken.toml", "tools", "list", cwd=tmp_path)
    assert proc.returncode == EXIT_CONFIG and "not valid TOML" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tools_list_show_export_import(project: Path) -> None:
    listed = run("-c", "tamma-tools.toml", "tools", "list", cwd=project)
    assert listed.returncode == 0
    for name in ("read_file", "write_file", "list_files", "http_request", "get_system_info"):
        assert name in listed.stdout
    shown = run("-c", "tamma-tools.toml", "tools", "show", "read_file", cwd=project)
    assert json.loads(shown.stdout)["metadata"]["permissions"] == ["file:read"]
    missing = run("-c", "tamma-tools.toml", "tools", "show", "read_fil", cwd=project)
    assert missing.returncode == EXIT_PROBLEM and "read_file" in missing.stderr
    exported = run("-c", "tamma-tools.toml", "tools", "export", cwd=project)
    (project / "export.json").write_text(exported.stdout)
    imported = run("tools", "import", "export.json", cwd=project)
    assert imported.returncode == 0 and "imported" in imported.stdout
    doc = json.loads(exported.stdout)
    doc["tools"][0]["function"]["name"] = "bad name with spaces"
    (project / "bad-export.json").write_text(json.dumps(doc))
    refused = run("tools", "import", "bad-export.json", cwd=project)
    assert refused.returncode == EXIT_PROBLEM and "refused" in refused.stdout


def test_tools_validate_reports_paths(tmp_path: Path) -> None:
    good = {
        "type": "function",
        "function": {"name": "ok", "parameters": {"type": "object", "properties": {}}},
    }
    bad = {"type": "function", "function": {"name": "not ok", "strict": True,
           "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}  # fmt: skip
    (tmp_path / "good.json").write_text(json.dumps([good]))
    (tmp_path / "bad.json").write_text(json.dumps([good, bad]))
    assert run("tools", "validate", "good.json", cwd=tmp_path).returncode == 0
    proc = run("tools", "validate", "bad.json", cwd=tmp_path)
    assert proc.returncode == EXIT_PROBLEM
    assert "tools[1].function.name" in proc.stdout


def test_exec_runs_calls_under_policy_and_audits_them(project: Path) -> None:
    (project / "response.json").write_text(json.dumps(completion(
        call("c1", "read_file", {"path": "notes/todo.md"}),
        call("c2", "read_file", {"path": "../tamma-tools.toml"}),
        call("c3", "read_file", {"path": ".env"}),
    )))  # fmt: skip
    proc = run("-c", "tamma-tools.toml", "exec", "response.json", "--json", cwd=project)
    assert proc.returncode == EXIT_PROBLEM  # some calls were refused
    messages = json.loads(proc.stdout)
    assert [m["tool_call_id"] for m in messages] == ["c1", "c2", "c3"]
    assert "ship it" in messages[0]["content"]
    assert "path_denied" in messages[1]["content"] and "path_denied" in messages[2]["content"]
    verify = run("-c", "tamma-tools.toml", "audit", "verify", cwd=project)
    assert verify.returncode == 0 and "3 records" in verify.stdout
    query = run(
        "-c", "tamma-tools.toml", "audit", "query", "--outcome", "denied", "--json", cwd=project
    )
    rows = [json.loads(line) for line in query.stdout.splitlines()]
    assert {r["call_id"] for r in rows} == {"c2", "c3"} and rows[0]["user_id"] == "cli-test"
    with sqlite3.connect(project / "audit.db") as db:
        table = db.execute("select name from sqlite_master where type='table'").fetchone()[0]
        db.execute(f"update {table} set tool = 'forged' where call_id = 'c1'")
    tampered = run("-c", "tamma-tools.toml", "audit", "verify", cwd=project)
    assert tampered.returncode == EXIT_PROBLEM and "broken" in tampered.stdout


def test_exec_reads_a_raw_sse_stream(project: Path) -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "s1", "type": "function", "function": {"name": "list_files", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"path"'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ': "notes"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]  # fmt: skip
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    (project / "stream.sse").write_text(body)
    proc = run("-c", "tamma-tools.toml", "exec", "stream.sse", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    [message] = json.loads(proc.stdout)
    assert message["tool_call_id"] == "s1" and "todo.md" in message["content"]


def test_policy_dry_runs(project: Path) -> None:
    ok = run("-c", "tamma-tools.toml", "policy", "check-path", "notes/todo.md", cwd=project)
    assert ok.returncode == 0 and "allowed" in ok.stdout
    out = run("-c", "tamma-tools.toml", "policy", "check-path", "../../etc/passwd", cwd=project)
    assert out.returncode == EXIT_PROBLEM and "refused" in out.stdout
    url = run(
        "-c", "tamma-tools.toml", "policy", "check-url", "http://169.254.169.254/", cwd=project
    )
    assert url.returncode == EXIT_PROBLEM and "refused" in url.stdout


def test_missing_audit_log_is_one_line(tmp_path: Path) -> None:
    proc = run("audit", "tail", cwd=tmp_path)
    assert proc.returncode == EXIT_PROBLEM and "no audit log" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sandbox_check_lists_layers(tmp_path: Path) -> None:
    proc = run("sandbox", "check", cwd=tmp_path)
    assert proc.returncode == 0
    assert "seccomp" in proc.stdout and "landlock" in proc.stdout.lower()


def test_demo_runs_offline_to_completion(tmp_path: Path) -> None:
    proc = run("demo", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "scripted" in out
    assert out.count("executed") >= 3 and out.count("refused") >= 2
    assert "hash chain: intact" in out
