"""Relative error (max|diff| / max|ref|) of each precision split against the official reference vectors.

python benchmarks/reference_errors.py [tests/reference]
"""

import sys

from primedepth.benchmarking.precision_errors import reference_errors

if __name__ == "__main__":
    reference = sys.argv[1] if len(sys.argv) > 1 else "tests/reference"
    print("| configuration | worst | per output |\n|---|---:|---|")
    for name, errors in reference_errors(reference).items():
        detail = ", ".join(f"{k} {v:.1e}" for k, v in errors.items() if k != "worst")
        print(f"| {name} | {errors['worst']:.1e} | {detail} |")
