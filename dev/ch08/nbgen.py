"""Tiny helper: build a notebook from (kind, source) pairs with stable cell ids."""
import hashlib
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def build(cells, path, prefix):
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    seen = set()
    for i, (kind, src) in enumerate(cells):
        src = src.strip("\n")
        c = new_markdown_cell(src) if kind == "md" else new_code_cell(src)
        if kind == "params":
            c.metadata["tags"] = ["parameters"]
        cid = f"{prefix}-{i:02d}-" + hashlib.sha1(src[:60].encode()).hexdigest()[:6]
        assert cid not in seen
        seen.add(cid)
        c.id = cid
        nb.cells.append(c)
    nbformat.validate(nb)
    nbformat.write(nb, path)
