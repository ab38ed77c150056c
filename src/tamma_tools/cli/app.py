"""Command tree: ``tamma-tools [--config FILE] [--debug] COMMAND ...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from tamma_tools.cli._common import (
    EXIT_PROBLEM,
    State,
    console,
    fail,
    handle_errors,
    pass_state,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "-c", type=click.Path(path_type=Path), envvar="TAMMA_TOOLS_CONFIG",
    help="TOML configuration file (default: secure built-in defaults).",
)  # fmt: skip
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="tamma-tools")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, debug: bool) -> None:
    """Safe, fast, observable function calling for AI agents."""
    ctx.obj = State(config, debug)


# --- tools ----------------------------------------------------------------------------------


@cli.group()
def tools() -> None:
    """Inspect, validate, export and import tool definitions."""


@tools.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
@handle_errors
def tools_list(state: State, as_json: bool) -> None:
    """List the registered tools (the built-ins, with the configured policy)."""
    with state.runtime(audit=False) as rt:
        entries = rt.manager.registry.all()
        if as_json:
            click.echo(
                json.dumps([e.definition.model_dump(mode="json") for e in entries], indent=2)
            )
            return
        table = Table(title="Registered tools")
        for column in ("name", "category", "permissions", "isolation", "description"):
            table.add_column(column)
        for e in entries:
            meta = e.definition.metadata
            table.add_row(
                e.name,
                meta.category,
                ", ".join(meta.permissions) or "-",
                meta.isolation or rt.sandbox_config.default_isolation,
                (e.definition.function.description or "").split("\n")[0][:70],
            )
        console.print(table)
        roots = ", ".join(str(r) for r in rt.roots) or "none (file tools refuse every path)"
        console.print(f"file roots: {roots}; network: "
                      f"{'on' if rt.sandbox_config.enable_network_access else 'off'}")  # fmt: skip


@tools.command("show")
@click.argument("name")
@pass_state
@handle_errors
def tools_show(state: State, name: str) -> None:
    """Print one tool's full definition and metadata as JSON."""
    with state.runtime(audit=False) as rt:
        entry = rt.manager.registry.get(name)
        click.echo(
            json.dumps(entry.definition.model_dump(mode="json", exclude_unset=False), indent=2)
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{path}: file not found")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{path}: not valid JSON: {exc}")


@tools.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@pass_state
@handle_errors
def tools_validate(state: State, file: Path) -> None:
    """Check tool definitions (one, a list, or an export) against OpenAI's rules."""
    from tamma_tools.schema.definition import validate_tool_list

    data = _read_json(file)
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        fail(f"{file}: expected a tool definition, a list of them, or a registry export")
    result = validate_tool_list(data)
    for issue in result.warnings:
        console.print(f"[yellow]warning[/] {issue.path}: {issue.message} [{issue.code}]")
    for issue in result.errors:
        console.print(f"[red]error[/]   {issue.path}: {issue.message} [{issue.code}]")
    if not result.valid:
        console.print(f"{file}: {len(result.errors)} problem(s) in {len(data)} tool(s)")
        sys.exit(EXIT_PROBLEM)
    console.print(f"{file}: {len(data)} tool(s) valid")


@tools.command("export")
@pass_state
@handle_errors
def tools_export(state: State) -> None:
    """Write the registry as versioned JSON to stdout (executors are never exported)."""
    with state.runtime(audit=False) as rt:
        click.echo(json.dumps(rt.manager.registry.export(), indent=2))


@tools.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the valid tools, refuse the rest.")
@pass_state
@handle_errors
def tools_import(state: State, file: Path, skip_invalid: bool) -> None:
    """Validate an export and report what would be imported and what is refused, and why."""
    from tamma_tools.registry import ToolRegistry

    data = _read_json(file)
    registry = ToolRegistry()
    report = registry.import_(data, mode="skip_invalid" if skip_invalid else "all_or_nothing")
    for name in report.imported:
        console.print(f"[green]imported[/] {name} (listed; needs an executor bound to run)")
    for refused in report.refused:
        console.print(f"[red]refused[/]  {refused.name or '?'}: {refused.reason}")
    if report.refused:
        sys.exit(EXIT_PROBLEM)


# --- config, policy, sandbox -----------------------------------------------------------------


@cli.group()
def config() -> None:
    """Check configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@handle_errors
def config_check(file: Path) -> None:
    """Validate FILE; every problem is listed with its key and what is allowed."""
    from tamma_tools.config import load_settings

    settings = load_settings(file)
    sandbox = settings.sandbox_config()
    console.print(f"{file}: valid")
    console.print(f"  roots: {', '.join(str(p) for p in sandbox.allowed_paths) or 'none'}")
    audit_backend = settings.audit.backend if settings.audit.enabled else "off"
    network = "on" if sandbox.enable_network_access else "off"
    commands = "on" if sandbox.enable_system_commands else "off"
    console.print(f"  network: {network}; commands: {commands}; audit: {audit_backend}")


@cli.group()
def policy() -> None:
    """Dry-run the path and network policy."""


@policy.command("check-path")
@click.argument("path")
@click.option("--mode", type=click.Choice(["read", "write", "list"]), default="read")
@pass_state
@handle_errors
def policy_check_path(state: State, path: str, mode: str) -> None:
    """Would a tool be allowed to open PATH? Exit 1 when refused."""
    from tamma_tools.errors import PolicyDenied
    from tamma_tools.sandbox.paths import PathPolicy

    policy = PathPolicy.from_config(state.settings().sandbox_config())
    try:
        resolved = policy.check_path(path, mode)  # type: ignore[arg-type]
    except PolicyDenied as exc:
        console.print(f"[red]refused[/] {path}: {exc.message} [rule {exc.rule}]")
        sys.exit(EXIT_PROBLEM)
    finally:
        policy.close()
    console.print(f"[green]allowed[/] {path} -> {resolved}")


@policy.command("check-url")
@click.argument("url")
@pass_state
@handle_errors
def policy_check_url(state: State, url: str) -> None:
    """Would a tool be allowed to fetch URL? Exit 1 when refused."""
    from tamma_tools.errors import PolicyDenied
    from tamma_tools.sandbox.network import NetworkPolicy

    policy = NetworkPolicy.from_config(state.settings().sandbox_config())
    try:
        checked = policy.check_url(url)
    except PolicyDenied as exc:
        console.print(f"[red]refused[/] {url}: {exc.message} [rule {exc.rule}]")
        sys.exit(EXIT_PROBLEM)
    console.print(f"[green]allowed[/] {url} -> {', '.join(checked.addresses)}")


@cli.group()
def sandbox() -> None:
    """Inspect the isolation this machine offers."""


@sandbox.command("check")
@pass_state
@handle_errors
def sandbox_check(state: State) -> None:
    """Probe which isolation layers this kernel offers (in a throwaway child)."""
    from tamma_tools.sandbox.isolation.capabilities import LAYERS, probe

    caps = probe()
    what = {
        "rlimits": "memory, CPU, file-size and open-file limits per call",
        "netns": "an empty network namespace for tools without network permission",
        "pidns": "a PID namespace: a command's whole process tree dies with the call",
        "landlock": f"filesystem (and TCP) rules by the kernel (ABI {caps.landlock_abi})",
        "seccomp": "no exec, fork, ptrace or non-Unix sockets unless allowed",
        "pidfd": "race-free kill of the call's process at its deadline",
    }
    table = Table(title=f"Isolation layers on this machine ({caps.kernel}, {caps.arch})")
    table.add_column("layer")
    table.add_column("available")
    table.add_column("what it gives")
    for layer in LAYERS:
        ok = bool(getattr(caps, layer))
        detail = what.get(layer, "") if ok else caps.reason(layer)
        table.add_row(layer, "[green]yes[/]" if ok else "[red]no[/]", detail)
    console.print(table)
    missing = [layer for layer in LAYERS if not getattr(caps, layer)]
    if missing:
        console.print(f"missing: {', '.join(missing)}; user tools are refused unless "
                      "allow_weak_isolation = true")  # fmt: skip


# --- audit and metrics -----------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """Read, verify and export the audit log."""


def _open_audit(state: State) -> Any:
    from tamma_tools.observability import open_audit_log

    settings = state.settings()
    section = settings.audit
    target = section.url if section.backend == "postgres" else str(settings.resolve(section.path))
    assert target is not None
    if section.backend == "sqlite" and not Path(target).exists():
        fail(f"no audit log at {target}; run some tool calls first or set [audit] path")
    return open_audit_log(target)


def _print_entries(entries: list[Any]) -> None:
    import datetime as dt

    table = Table()
    for column in ("seq", "time (UTC)", "tool", "caller", "outcome", "code", "ms", "arguments"):
        table.add_column(column)
    for e in entries:
        when = dt.datetime.fromtimestamp(e.ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            str(e.seq), when, e.tool, e.user_id, e.outcome, e.error_code or "",
            f"{e.duration_ms:.1f}", e.args_preview[:60],
        )  # fmt: skip
    console.print(table)


@audit.command("tail")
@click.option("-n", "limit", default=20, show_default=True)
@pass_state
@handle_errors
def audit_tail(state: State, limit: int) -> None:
    """The last N records."""
    log = _open_audit(state)
    try:
        entries = log.query(limit=limit, newest_first=True)
        _print_entries(list(reversed(entries)))
    finally:
        log.close()


@audit.command("query")
@click.option("--tool")
@click.option("--user", "user_id")
@click.option("--outcome")
@click.option("--since", type=float, help="Unix time.")
@click.option("--until", type=float, help="Unix time.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def audit_query(
    state: State, tool: str | None, user_id: str | None, outcome: str | None,
    since: float | None, until: float | None, limit: int, as_json: bool,
) -> None:  # fmt: skip
    """Records filtered by tool, caller, outcome and time range."""
    log = _open_audit(state)
    try:
        entries = log.query(tool=tool, user_id=user_id, outcome=outcome, since=since,
                            until=until, limit=limit)  # fmt: skip
        if as_json:
            for e in entries:
                click.echo(json.dumps(e.to_dict(), default=str))
        else:
            _print_entries(entries)
    finally:
        log.close()


@audit.command("verify")
@pass_state
@handle_errors
def audit_verify(state: State) -> None:
    """Check the hash chain; exit 1 and name the first broken record if tampered."""
    log = _open_audit(state)
    try:
        report = log.verify()
    finally:
        log.close()
    if report.ok:
        console.print(f"[green]chain intact[/]: {report.checked} records verified")
        return
    console.print(f"[red]chain broken[/] at record {report.first_bad_seq}: {report.reason}")
    sys.exit(EXIT_PROBLEM)


@audit.command("export")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Default: stdout.")
@pass_state
@handle_errors
def audit_export(state: State, output: Path | None) -> None:
    """Every record as JSON lines."""
    log = _open_audit(state)
    try:
        n = log.export_jsonl(sys.stdout.buffer if output is None else output)
    finally:
        log.close()
    click.echo(f"{n} records exported", err=True)


@cli.group()
def metrics() -> None:
    """Prometheus metrics."""


@metrics.command("serve")
@click.option("--port", type=int, default=None, help="Default: [metrics] port or 9464.")
@click.option("--host", default="127.0.0.1", show_default=True)
@pass_state
@handle_errors
def metrics_serve(state: State, port: int | None, host: str) -> None:
    """Serve /metrics for this process's registry until interrupted."""
    import time

    from tamma_tools.observability import Observability

    settings = state.settings()
    obs = Observability(audit=False, metrics=True, tracing=False)
    server = obs.serve_metrics(port or settings.metrics.port or 9464, host=host)
    console.print(f"serving metrics on http://{host}:{server.port}/metrics (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        obs.close()


def _register_more() -> None:
    from tamma_tools.cli import chat_cmd, demo_cmd, exec_cmd, serve_cmd

    cli.add_command(exec_cmd.exec_command)
    cli.add_command(chat_cmd.chat)
    cli.add_command(demo_cmd.demo)
    cli.add_command(serve_cmd.serve)


_register_more()
