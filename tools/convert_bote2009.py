"""Convert the Bote et al. (2009) coefficient files into edstomo's own table.

Run once, from the repository root::

    python tools/convert_bote2009.py ../shared/reference/bote2009 \
        plugins/edstomo_plugins/physics/data/bote2009.json

The inputs are the comma-separated files of NIST's public-domain EPQ library
(``SalvatXionA.csv``, ``SalvatXionB.csv``, ``xionUis.csv``: one row per element,
Z = 1..99, shells K, L1, L2, L3, M1..M5 as many as the element has). The output
is one JSON file: a header with the citation, the formulas and the column
names, then for each Z a list of shells, each
``[E_i (eV), a1, a2, a3, a4, a5, b-, A_nlj, g1, g2, g3, g4]``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

SHELLS = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
N_A, N_B = 5, 6


def _rows(path: Path) -> dict[int, list[float]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = {}
        for row in csv.reader(handle):
            if not row or not row[0].strip():
                continue
            values = [float(cell) for cell in row]
            rows[int(values[0])] = values[1:]
    return rows


def convert(folder: Path) -> dict:
    """The table as a JSON-ready dictionary."""
    low, high, energies = (_rows(folder / name) for name in ("SalvatXionA.csv", "SalvatXionB.csv", "xionUis.csv"))
    if not set(low) == set(high) == set(energies) == set(range(1, 100)):
        raise ValueError("expected rows for Z = 1..99 in each of the three files")
    elements = {}
    for z in range(1, 100):
        n = len(energies[z])
        if len(low[z]) != N_A * n or len(high[z]) != N_B * n or n > len(SHELLS):
            raise ValueError(f"Z = {z}: inconsistent numbers of shells across the three files")
        elements[str(z)] = [
            [energies[z][i], *low[z][N_A * i : N_A * (i + 1)], *high[z][N_B * i : N_B * (i + 1)]] for i in range(n)
        ]
    return {
        "name": "bote2009",
        "citation": (
            "D. Bote, F. Salvat, A. Jablonski, C. J. Powell, 'Cross sections for ionization of K, L and M shells "
            "of atoms by impact of electrons and positrons with energies up to 1 GeV: Analytical formulas', "
            "Atomic Data and Nuclear Data Tables 95 (2009) 871-909, doi:10.1016/j.adt.2009.08.001"
        ),
        "origin": (
            "Published coefficients as distributed with NIST's EPQ library (DTSA-II), a work of the US "
            "government in the public domain in the United States; converted by tools/convert_bote2009.py"
        ),
        "formula": {
            "U <= 16": "sigma = 4 pi a0^2 (U-1)/U^2 [a1 + a2 U + a3/(1+U) + a4/(1+U)^3 + a5/(1+U)^5]^2",
            "U > 16": (
                "sigma = 4 pi a0^2 U/(U+b-) (A/beta^2) {[ln(X^2) - beta^2](1 + g1/X) + g2 + g3 (1-beta^2)^(1/4) + g4/X}"
            ),
            "definitions": "U = E/E_i; beta^2 = E(E+2mc^2)/(E+mc^2)^2; X = sqrt(E(E+2mc^2))/mc^2",
        },
        "shells": list(SHELLS),
        "columns": ["E_i_eV", "a1", "a2", "a3", "a4", "a5", "b_minus", "A", "g1", "g2", "g3", "g4"],
        "elements": elements,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with SalvatXionA.csv, SalvatXionB.csv, xionUis.csv")
    parser.add_argument("output", type=Path, help="the JSON file to write")
    args = parser.parse_args()
    table = convert(args.folder)
    elements = table.pop("elements")
    header = json.dumps(table, indent=1)[:-2]  # without the closing brace
    rows = ",\n".join(f"  {json.dumps(z)}: {json.dumps(shells)}" for z, shells in elements.items())
    args.output.write_text(f'{header},\n "elements": {{\n{rows}\n }}\n}}\n', encoding="utf-8")


if __name__ == "__main__":
    main()
