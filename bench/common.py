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


def alternate(ours, base, rounds: int = 3) -> tuple[float, float]:
    """Measure two rates in alternating rounds and return their medians, so a
    burst of noise on a shared machine lands on both sides, not on one."""
    a, b = [], []
    for _ in range(rounds):
        b.append(base())
        a.append(ours())
    return sorted(a)[rounds // 2], sorted(b)[rounds // 2]
