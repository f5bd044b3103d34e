"""mplug2 stands alone: no faiss, sqlalchemy, streamlit or indexer; and its light parts do not import torch."""

import subprocess
import sys


def modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    return set(
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    )


def test_resize_does_not_import_torch() -> None:
    assert "torch" not in modules_after("import mplug2.resize")


def test_the_model_needs_none_of_the_search_stack() -> None:
    loaded = modules_after("import mplug2\nmplug2.create_model('mplug2-tiny')")
    assert "torch" in loaded
    assert not loaded & {"faiss", "sqlalchemy", "streamlit", "indexer", "search_ui"}
