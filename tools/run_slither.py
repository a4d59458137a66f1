"""Run slither over the production contracts and fail on any untriaged High/Medium finding.

Triaged findings live in ``docs/SLITHER.md`` as table rows whose first cell is the
finding key ``check:Contract.function`` (or ``check:Contract``); the explanation is in
the row. A High or Medium finding whose key is not in that file fails the run, and so
does a triage row that no longer matches any finding (stale triage hides nothing).

Usage: python tools/run_slither.py   (from the repository root, via ``make slither``)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOLC = ROOT / "tools" / "solc" / "solc-v0.8.37"
TRIAGE = ROOT / "docs" / "SLITHER.md"
GATED = {"High", "Medium"}


def finding_key(result: dict[str, Any]) -> str:
    """Stable key of a finding: detector name plus the first function or contract named."""
    check = result["check"]
    for element in result.get("elements", []):
        if element.get("type") == "function":
            parent = element.get("type_specific_fields", {}).get("parent", {}).get("name", "?")
            return f"{check}:{parent}.{element['name']}"
    for element in result.get("elements", []):
        if element.get("type") == "contract":
            return f"{check}:{element['name']}"
    return str(check)


def triaged_keys() -> set[str]:
    """Keys listed in the first cell of the triage table in docs/SLITHER.md."""
    if not TRIAGE.exists():
        return set()
    keys = set()
    for line in TRIAGE.read_text().splitlines():
        match = re.match(r"^\|\s*`([^`]+)`\s*\|", line)
        if match:
            keys.add(match.group(1))
    return keys


def run(target: Path) -> list[dict[str, Any]]:
    """Run slither on the contracts folder and return its detector results.

    Test-only contracts and ape's dependency cache are compiled (imports need them) but
    not reported.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "slither.json"
        cmd = [
            str(Path(sys.executable).parent / "slither"), str(target.relative_to(ROOT)),
            "--solc", str(SOLC), "--solc-standard-json",
            "--solc-remaps", "@openzeppelin/contracts=node_modules/@openzeppelin/contracts",
            "--exclude-dependencies", "--filter-paths", r"contracts/\.cache|contracts/test|node_modules",
            "--json", str(out),
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if not out.exists():
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"slither failed on {target.name} (exit {proc.returncode})")
        data = json.loads(out.read_text())
        if not data.get("success"):
            raise SystemExit(f"slither failed on {target.name}: {data.get('error')}")
        detectors: list[dict[str, Any]] = data.get("results", {}).get("detectors", [])
        return detectors


def main() -> int:
    targets = sorted(p for p in (ROOT / "contracts").glob("*.sol"))
    if not targets:
        raise SystemExit("no contracts found under contracts/")
    os.environ.setdefault("SOLCX_BINARY_PATH", str(SOLC.parent))
    findings: dict[str, dict[str, Any]] = {}
    for result in run(ROOT / "contracts"):
        findings.setdefault(finding_key(result) + "@" + result["impact"], result)
    triaged = triaged_keys()
    untriaged, seen = [], set()
    for key_impact, result in sorted(findings.items()):
        key, impact = key_impact.rsplit("@", 1)
        if impact not in GATED:
            continue
        seen.add(key)
        if key not in triaged:
            untriaged.append(f"  {impact}: {key}\n    {result['description'].strip()}")
    stale = sorted(triaged - seen)
    counts: dict[str, int] = {}
    for key_impact in findings:
        impact = key_impact.rsplit("@", 1)[1]
        counts[impact] = counts.get(impact, 0) + 1
    print(f"slither: {len(targets)} files, findings by impact: {counts}")
    if untriaged:
        print("untriaged High/Medium findings (fix them or explain them in docs/SLITHER.md):")
        print("\n".join(untriaged))
    if stale:
        print("triage rows in docs/SLITHER.md that match no finding any more: " + ", ".join(stale))
    return 1 if untriaged or stale else 0


if __name__ == "__main__":
    sys.exit(main())
