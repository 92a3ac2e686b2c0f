"""What every benchmark prints: two rates measured side by side, and their ratio."""

from __future__ import annotations


def report(name: str, ours: float, base: float, unit: str, target: float | None = None) -> None:
    ratio = ours / base
    goal = (
        f"(target >= {target}x) {'ok' if ratio >= target else 'BELOW TARGET'}"
        if target
        else "(reported)"
    )
    print(f"{name:<62} {ours:8.2f} vs {base:8.2f} {unit:<9} ratio {ratio:5.2f}x {goal}", flush=True)
