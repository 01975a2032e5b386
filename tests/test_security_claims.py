"""README "Security and limits": every claim names the tests that check it, and each named test exists."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Security and limits", 1)[1].split("\n## ", 1)[0]


def defined_tests() -> set[str]:
    names = set()
    for f in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_every_claim_names_existing_tests():
    claims = [c for c in re.split(r"\n- ", section()) if c.startswith("**")]
    assert len(claims) >= 10, claims
    have = defined_tests()
    for c in claims:
        m = re.search(r"\(tests:\s([^)]*)\)", c)
        assert m, f"claim without tests: {c[:80]}"
        named = [t.strip() for t in m.group(1).replace("\n", " ").split(",")]
        missing = [t for t in named if t not in have]
        assert not missing, (c[:60], missing)


def test_config_binds_to_localhost():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1" and cfg["server"]["maxUploadSize"] == 50
