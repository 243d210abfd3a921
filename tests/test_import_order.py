"""The house rule of docs/architecture.md: no room of ``src/primedepth`` imports a higher one, and rooms of one rank
import none of each other (read from the order written in that file, so the document and the code cannot drift)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "primedepth"


def documented_ranks() -> dict[str, int]:
    """``floor (a, b) < c < d, e < ...`` from docs/architecture.md -> room -> rank."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("Lower rooms never import higher ones:", 1)[1].split("```")[1]
    ranks = {}
    for rank, level in enumerate(" ".join(block.split()).split(" < ")):
        level = re.sub(r"^floor \((.*)\)$", r"\1", level.strip())
        for room in level.split(","):
            ranks[room.strip()] = rank
    return ranks


def imports_of(module: str, source: str) -> set[str]:
    """The ``primedepth.<room>`` names that ``source``, the text of ``module`` (``primedepth.a.b`` or
    ``primedepth.a.__init__``), imports: module level and inside functions, absolute and relative."""
    parts = module.split(".")
    base = parts[:-1]  # the package a relative import starts from (a package's __init__ is in the package itself)
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            parent = base[: len(base) - (node.level - 1)]
            names = (
                [".".join(parent + [node.module])] if node.module else [".".join(parent + [a.name]) for a in node.names]
            )
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        found.update(".".join(n.split(".")[:2]) for n in names if n.startswith("primedepth."))
    return found


def test_every_room_is_ranked_and_no_room_imports_upward_or_sideways():
    ranks = documented_ranks()
    code_rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    code_rooms |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert code_rooms <= set(ranks), f"rooms missing from docs/architecture.md's order: {code_rooms - set(ranks)}"
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        room = parts[0].removesuffix(".py")
        if room == "__init__":
            continue
        module = ".".join(("primedepth", *path.relative_to(PACKAGE).with_suffix("").parts))
        for target in imports_of(module, path.read_text()):
            other = target.split(".")[1]
            floor = ranks[room] == ranks.get(other) == 0  # the floor's modules may use each other
            if other != room and other in ranks and ranks[other] >= ranks[room] and not floor:
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, "imports against docs/architecture.md's order:\n" + "\n".join(wrong)


def test_the_check_reads_relative_and_late_imports():
    source = (
        "import primedepth.utils.atomic\nfrom . import layout\n\ndef f():\n    from ..pipelines.pipeline import X\n"
    )
    assert imports_of("primedepth.models.banded", source) == {
        "primedepth.utils",
        "primedepth.models",
        "primedepth.pipelines",
    }
    assert imports_of("primedepth.jobs.__init__", "from .video import predict_video\n") == {"primedepth.jobs"}
    assert documented_ranks()["utils"] == 0 < documented_ranks()["models"] < documented_ranks()["cli"]
